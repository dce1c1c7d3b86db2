#!/usr/bin/env bash
# Usage over time windows (GET /v1/usage?from&to&granularity, docs/api.md):
# the numbers equal what the sink received, two batches produced in two
# different minutes land in two minute buckets and one hour bucket (or two
# when an hour boundary falls between them), from/to narrow the window,
# filters, bad parameters answer 400 with a message, and everything
# survives a restart.
. "$(dirname "$0")/lib.sh"

TOPIC=usage-in
es_start_broker -t $TOPIC:2
PORT=$(es_free_port)
TOKEN=use-$RANDOM
URL=http://127.0.0.1:$PORT
OUT="$ES_TMP/out.jsonl"
CONFIG=$(es_config usage "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"usage\": {\"minute_retention_hours\": 2, \"hour_retention_days\": 7},
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"$TOPIC\"], \"tenant\": [\"data.tenant\"],
                \"destinations\": [\"out\"]}]
}")
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
code() { curl -s -o "$ES_TMP/body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$@"; }
gen() { # $1 = prefix, $2 = count; tenants t0..t2
    python3 - "$1" "$2" <<'PY'
import json, sys
for i in range(int(sys.argv[2])):
    print(json.dumps({"specversion": "1.0", "id": "%s%d" % (sys.argv[1], i),
                      "source": "t", "type": "x",
                      "data": {"tenant": "t%d" % (i % 3), "pad": "x" * (i % 17)}}))
PY
}
sink_bytes() { echo $(($(wc -c <"$OUT") - $(es_count "$OUT"))); }
sum() { # $1 = jq path to rows, $2 = field
    jq "[$1 | .$2] | add // 0"
}

es_start_daemon "$CONFIG"
# the first batch well inside one minute
while [ $(($(date +%s) % 60)) -ge 45 ]; do sleep 1; done
T0=$(date +%s)
gen a 30 >"$ES_TMP/a.txt"
es_produce $TOPIC "$ES_TMP/a.txt"
es_wait_lines "$OUT" 30 30 || true
A_LINES=$(es_count "$OUT")
A_BYTES=$(sink_bytes)
# the second batch in the next minute
sleep $((61 - $(date +%s) % 60))
T1=$(date +%s)
gen b 21 >"$ES_TMP/b.txt"
es_produce $TOPIC "$ES_TMP/b.txt"
es_wait_lines "$OUT" 51 30 || true
sleep 0.5

window_checks() { # $1 = label
    local from=$((T0 - 120)) to=$(($(date +%s) + 60))
    api "$URL/v1/usage?granularity=minute&from=$from&to=$to" >"$ES_TMP/min.json"
    es_eq "$1: delivered events over minute buckets = sink lines" "$(es_count "$OUT")" \
        "$(sum '.buckets[].delivered[]' events <"$ES_TMP/min.json")"
    es_eq "$1: delivered bytes = sink bytes" "$(sink_bytes)" \
        "$(sum '.buckets[].delivered[]' bytes <"$ES_TMP/min.json")"
    es_eq "$1: consumed = produced" 51 "$(sum '.consumed[]' events <"$ES_TMP/min.json")"
    es_eq "$1: two minute buckets" 2 "$(jq '.buckets | length' "$ES_TMP/min.json")"
    es_eq "$1: first minute holds the first batch" "$A_LINES $A_BYTES" \
        "$(jq -r '[.buckets[0].delivered[] | .events] as $e | [.buckets[0].delivered[] | .bytes] as $b | "\($e | add) \($b | add)"' "$ES_TMP/min.json")"
    es_eq "$1: second minute holds the second batch" 21 \
        "$(sum '.buckets[1].delivered[]' events <"$ES_TMP/min.json")"
    es_eq "$1: minute bucket starts" "$(date -u -d @$((T0 - T0 % 60)) +%FT%TZ) $(date -u -d @$((T1 - T1 % 60)) +%FT%TZ)" \
        "$(jq -r '[.buckets[].start] | join(" ")' "$ES_TMP/min.json")"
    api "$URL/v1/usage?granularity=hour&from=$from&to=$to" >"$ES_TMP/hour.json"
    local hours=1
    [ $((T0 / 3600)) -eq $((T1 / 3600)) ] || hours=2
    es_eq "$1: hour buckets" $hours "$(jq '.buckets | length' "$ES_TMP/hour.json")"
    es_eq "$1: hour window sums = sink lines" "$(es_count "$OUT")" "$(sum '.delivered[]' events <"$ES_TMP/hour.json")"
    es_eq "$1: per tenant (t1) = sink lines of t1" "$(grep -c '"tenant": "t1"' "$OUT")" \
        "$(api "$URL/v1/usage?granularity=day&from=$from&to=$to&tenant=t1" | sum '.delivered[]' events)"
    es_eq "$1: consumed per tenant (t1), with the route's tenant spec" 17 \
        "$(api "$URL/v1/usage?granularity=day&from=$from&to=$to&tenant=t1" | sum '.consumed[]' events)"
    es_eq "$1: from narrows to the second minute" 21 \
        "$(api "$URL/v1/usage?granularity=minute&from=$((T1 - T1 % 60))&to=$to" | sum '.delivered[]' events)"
    es_eq "$1: RFC 3339 to excludes the second minute" "$A_LINES" \
        "$(api "$URL/v1/usage?granularity=minute&from=$from&to=$(date -u -d @$((T1 - T1 % 60)) +%FT%TZ)" | sum '.delivered[]' events)"
    es_eq "$1: endpoint filter: deliveries only" "0 $(es_count "$OUT")" \
        "$(api "$URL/v1/usage?granularity=hour&from=$from&to=$to&endpoint=out" | jq -r '"\(.consumed | length) \([.delivered[].events] | add)"')"
    es_eq "$1: totals unchanged in shape" "$(es_count "$OUT")" "$(api "$URL/v1/usage?topic=$TOPIC" | sum '.delivered[]' events)"
}
window_checks "live"

es_eq "bad granularity: 400" 400 "$(code "$URL/v1/usage?granularity=week")"
es_eq "bad granularity: message" '"granularity: must be minute, hour or day"' "$(jq -c .error "$ES_TMP/body")"
es_eq "bad from: 400 with message" '400 "from: not an RFC 3339 time or epoch seconds"' \
    "$(code "$URL/v1/usage?from=yesterday") $(jq -c .error "$ES_TMP/body")"
es_eq "from after to: 400" 400 "$(code "$URL/v1/usage?from=2000&to=1000")"
es_eq "usage needs the token" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/usage")"
RETAINED=$(jq -r .retained_from "$ES_TMP/min.json")
es_check "retained_from follows minute_retention_hours ($RETAINED)" test \
    "$RETAINED" "<" "$(date -u -d @$(($(date +%s) - 7000)) +%FT%TZ)" -a \
    "$RETAINED" ">" "$(date -u -d @$(($(date +%s) - 7400)) +%FT%TZ)"

es_stop_daemon TERM
es_check "database in the state dir" test -s "$ES_TMP/state/usage.sqlite"
: >"$ES_DAEMON_LOG"
es_start_daemon "$CONFIG" "$ES_DAEMON_LOG"
window_checks "after restart"
es_stop_daemon TERM
es_finish
