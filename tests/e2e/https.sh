#!/usr/bin/env bash
# End to end: Kafka (mock cluster) -> eventstreamd -> https sink -> a real
# TLS receiver on loopback (tests/peers/https/server.py, throwaway CA) that
# checks Standard Webhooks signatures with Python's hmac. The receiver is
# scripted to fail (503 burst, 429 + Retry-After, a 400 for one marked
# event, then 410): every event must be accepted exactly once or
# dead-lettered with its reason, and the rest must flow.
. "$(dirname "$0")/lib.sh"

TOPIC=eventzr.marketplace.listing.created.v1
GEN="$SRC_DIR/tests/e2e/gen_events.py"
PEER="$SRC_DIR/tests/peers/https"
SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw

es_start_broker -t "$TOPIC:4" -t eventstream.dlq:1

sh "$PEER/mkcerts.sh" "$ES_TMP/certs"
python3 "$PEER/server.py" "$ES_TMP/certs" >"$ES_TMP/server.out" 2>"$ES_TMP/server.err" &
ES_PIDS+=("$!")
for _ in $(seq 1 100); do
    grep -q port "$ES_TMP/server.out" 2>/dev/null && break
    sleep 0.05
done
PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$ES_TMP/server.out")
CA="$ES_TMP/certs/ca.pem"
ctl() { curl -sf --cacert "$CA" -X "$1" "https://127.0.0.1:$PORT$2" ${3:+-d "$3"}; }
state() { ctl GET /_ctl/state; }
# py EXPR: evaluates EXPR with s = the receiver's state
py() { state | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }

ctl POST /_ctl/config "{\"reset\": true, \"secrets\": [\"$SECRET\"], \"reject_marker\": \"POISON\"}"

CONFIG=$(es_config https "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state\",
  \"retry\": {\"initial_backoff_ms\": 100, \"max_backoff_ms\": 1000, \"max_attempts\": 20},
  \"instances\": {\"hook\": {\"plugin\": \"https\", \"config\": {
     \"url\": \"https://localhost:$PORT/hook\",
     \"mode\": \"batch\", \"gzip\": true,
     \"batch\": {\"max_events\": 100, \"max_wait_ms\": 20},
     \"max_concurrency\": 1,
     \"tls\": {\"ca_file\": \"$CA\", \"min_version\": \"1.2\"},
     \"signing\": {\"secrets\": [\"$SECRET\"]},
     \"headers\": {\"X-Eventstream-Test\": \"e2e\"}}}},
  \"routes\": [{\"name\": \"listings\", \"topics\": [\"$TOPIC\"], \"destinations\": [\"hook\"]}]
}")

# --- config errors from the plugin name the key
BAD=$(es_config bad "{\"kafka\": {\"brokers\": \"x\"}, \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"instances\": {\"o\": {\"plugin\": \"https\", \"config\": {\"url\": \"https://x\", \"tls\": {\"cafile\": \"x\"}}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"t\"], \"destinations\": [\"o\"]}]}")
msg=$("$ES_BIN" --check-config "$BAD" 2>&1 || true)
es_check "https config error names the key" grep -q "tls.cafile: unknown key" <<<"$msg"

es_start_daemon "$CONFIG"

# --- 2,000 events, one marked, through a 503 burst and a 429 + Retry-After
python3 "$GEN" 2000 --keyed >"$ES_TMP/events.txt"
# mark one event: the receiver answers 400 to any body containing it
python3 - "$ES_TMP/events.txt" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
k, v = lines[777].split("\t", 1)
ev = json.loads(v)
ev["data"]["note"] = "POISON"
lines[777] = k + "\t" + json.dumps(ev, separators=(",", ":"))
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
POISON_ID=$(sed -n 778p "$ES_TMP/events.txt" | cut -f2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
ctl POST /_ctl/config '{"script": [{"status": 503}, {"status": 503}, {"status": 503},
  {"status": 429, "headers": {"Retry-After": "1"}}, {"status": 502}]}'
es_produce "$TOPIC" "$ES_TMP/events.txt"

for _ in $(seq 1 120); do
    [ "$(py 'len(s["accepted"])')" -ge 1999 ] && break
    sleep 0.5
done
es_eq "1,999 events accepted by the endpoint" 1999 "$(py 'len(s["accepted"])')"
es_eq "each accepted exactly once" 1 "$(py 'max(s["accepted"].values())')"
es_eq "the marked event was not accepted" 0 "$(py "s['accepted'].get('$POISON_ID', 0)")"
es_eq "every request's signature verifies (Python hmac)" True \
    "$(py 'all(r["sig_ok"] for r in s["requests"] if r["path"] == "/hook")')"
es_eq "batched, gzipped, static header" True \
    "$(py 'all(r["headers"].get("content-encoding") == "gzip" and r["content_type"].startswith("application/cloudevents-batch+json") and r["headers"].get("x-eventstream-test") == "e2e" for r in s["requests"])')"
state >"$ES_TMP/state.json"
es_check "events arrive byte-identical" python3 - "$ES_TMP/events.txt" "$ES_TMP/state.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[2]))
accepted = "\n".join(r["body"] for r in s["requests"] if 200 <= r["status"] < 300)
values = [l.split("\t", 1)[1] for l in open(sys.argv[1]).read().splitlines()]
missing = [v for v in values if v not in accepted]
sys.exit(0 if len(missing) == 1 and "POISON" in missing[0] else 1)
EOF
# the Retry-After hold: one connection (max_concurrency 1), so the
# receiver's clock orders requests: none in the second after the 429
es_check "nothing sent during the Retry-After hold" python3 - "$ES_TMP/state.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
t = [r["t"] for r in s["requests"] if r["status"] == 429]
sys.exit(0 if len(t) == 1 and not any(0 < r["t"] - t[0] < 0.95 for r in s["requests"]) else 1)
EOF

# es_consume stops at the end of the topic: poll until COUNT are there
dlq_wait() {
    for _ in $(seq 1 60); do
        es_consume eventstream.dlq "$1" "$2" "$BOOTSTRAP" '%k|%h|%s\n'
        [ "$(es_count "$2")" -ge "$1" ] && return 0
        sleep 0.5
    done
}
dlq_wait 1 "$ES_TMP/dlq.txt"
es_eq "one event dead-lettered" 1 "$(es_count "$ES_TMP/dlq.txt")"
es_check "dlq: the marked event with the endpoint's answer" \
    grep -q "es_reason=HTTP 400: rejected: marked event.*es_plugin=https" "$ES_TMP/dlq.txt"
es_check "dlq: original value untouched" grep -qF "$(sed -n 778p "$ES_TMP/events.txt" | cut -f2)" "$ES_TMP/dlq.txt"

# --- 410: the endpoint is disabled loudly, later events are dead-lettered
ctl POST /_ctl/config '{"gone": true}'
python3 "$GEN" 5 --start 5000 --keyed >"$ES_TMP/gone.txt"
es_produce "$TOPIC" "$ES_TMP/gone.txt"
dlq_wait 6 "$ES_TMP/dlq2.txt"
es_eq "5 events dead-lettered after 410" 5 "$(grep -c 'es_reason=[^,]*410' "$ES_TMP/dlq2.txt" || true)"
es_check "410 logged loudly" grep -q "ENDPOINT DISABLED" "$ES_DAEMON_LOG"
es_check "no secret in the daemon log" bash -c "! grep -q MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw '$ES_DAEMON_LOG'"

rc=0; es_stop_daemon TERM || rc=$?
es_eq "SIGTERM exits 0" 0 "$rc"
es_finish
