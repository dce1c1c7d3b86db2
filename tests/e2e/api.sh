#!/usr/bin/env bash
# The admin API against the running daemon: probes, bearer auth, JSON
# errors, Prometheus metrics whose numbers match what the sink received, and
# every path of api/openapi.yaml answering.
. "$(dirname "$0")/lib.sh"

es_start_broker -t api-in:2
PORT=$((20000 + RANDOM % 20000))
TOKEN=s3cr3t-$RANDOM
OUT="$ES_TMP/out.jsonl"
CONFIG=$(es_config api "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"api-in\"], \"destinations\": [\"out\"]}]
}")
URL=http://127.0.0.1:$PORT
es_start_daemon "$CONFIG"
es_eq "health" '{"status":"ok"}' "$(curl -s "$URL/health")"
es_eq "ready once joined" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/ready")"
es_eq "metrics without token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")"
es_eq "401 body is JSON" '{"error":"missing or wrong bearer token"}' "$(curl -s "$URL/metrics")"
es_eq "wrong token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x$TOKEN" "$URL/metrics")"
es_eq "unknown path: 404 JSON" '{"error":"no such endpoint"}' "$(curl -s "$URL/nope")"
es_eq "wrong method: 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/health")"
es_check "token never logged" bash -c "! grep -q '$TOKEN' '$ES_DAEMON_LOG'"

python3 "$SRC_DIR/tests/e2e/gen_events.py" 250 >"$ES_TMP/ev.txt"
printf '{"bad"\n' >>"$ES_TMP/ev.txt"
es_produce api-in "$ES_TMP/ev.txt"
es_wait_lines "$OUT" 250 30 || true
sleep 1.5 # one commit interval, so the lag gauge is fresh
curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" >"$ES_TMP/metrics.txt"
es_check "metrics parse as Prometheus text" python3 - "$ES_TMP/metrics.txt" <<'PY'
import re, sys
sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \+?Inf$')
seen_types = set()
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        name = line.split()[2]
        assert name not in seen_types, "family split: " + name
        seen_types.add(name)
        continue
    assert sample.match(line), "bad sample line: " + line
assert seen_types, "no metrics"
PY
metric() { sed -n "s/^$1 //p" "$ES_TMP/metrics.txt"; }
es_eq "delivered counter equals sink lines" "$(es_count "$OUT")" "$(metric 'es_delivered_total{destination="out"}')"
es_eq "consumed counter" 251 "$(metric es_consumed_total)"
es_eq "decode failures counted" 1 "$(metric es_decode_failed_total)"
es_eq "latency histogram counts every delivery" 250 "$(metric 'es_delivery_latency_seconds_count{destination="out"}')"
es_check "lag gauge per partition" grep -q '^es_consumer_lag{group="eventstreamd",topic="api-in",partition="[01]"} 0$' "$ES_TMP/metrics.txt"

# Every path documented in the OpenAPI document answers (not 404).
for path in $(sed -n 's/^  \(\/[^:]*\):$/\1/p' "$SRC_DIR/api/openapi.yaml"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL$path")
    es_check "documented $path answers ($code)" test "$code" != 404 -a "$code" != 000
done
es_stop_daemon TERM
es_finish
