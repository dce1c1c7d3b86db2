#!/usr/bin/env bash
# Topic onboarding and the /v1 admin API against the running daemon
# (docs/onboarding.md): a bad topic-details.json stops startup naming file
# and key; onboarded tenant spec and PII stripping at the sink; topic
# testing dry run (filter effect, PII stripped, nothing delivered) and real
# delivery to a test endpoint; schemas; an onboarded Avro topic decoded by
# the pipeline and by the dry run (value_base64); usage numbers equal what
# the sink received and survive a restart; an added or changed folder is
# picked up live, a bad change keeps the old.
. "$(dirname "$0")/lib.sh"

TOPIC=ob-orders
AVRO_TOPIC=ob-avro-ce
es_start_broker -t $TOPIC:2 -t $AVRO_TOPIC:1 -t ob-avro-late:1 -t ob-exact:1
PORT=$(es_free_port)
TOKEN=ob-$RANDOM$RANDOM
URL=http://127.0.0.1:$PORT
OUT="$ES_TMP/out.jsonl"
PROBE="$ES_TMP/probe.jsonl"
AOUT="$ES_TMP/avro-out.jsonl"
TOPICS="$ES_TMP/service-teams-topics"
PLUGINS="$ES_TMP/plugins"

# The seed folders plus a test team's topics.
cp -r "$SRC_DIR/service-teams-topics" "$TOPICS"
mkdir -p "$TOPICS/test-svc/orders" "$TOPICS/test-svc/avro-orders" "$PLUGINS"
cat >"$TOPICS/test-svc/orders/topic-details.json" <<EOF
{"topic": "$TOPIC", "team": "test-svc", "tenancy": "multi", "format": "json",
 "tenant": ["data.customer.org"], "pii": ["data.email", "data.customer.phone"],
 "description": "test orders"}
EOF
cat >"$TOPICS/test-svc/avro-orders/order.avsc" <<'EOF'
{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
EOF
cat >"$TOPICS/test-svc/avro-orders/topic-details.json" <<'EOF'
{"topic": "ob-avro", "team": "test-svc", "tenancy": "single", "format": "avro",
 "schema": "order.avsc", "tenant": ["key"]}
EOF
# A JSON topic routed with no filter: the PII strip alone edits its events.
mkdir -p "$TOPICS/test-svc/exact"
echo '{"topic": "ob-exact", "team": "test-svc", "tenancy": "single", "format": "json", "tenant": ["key"], "pii": ["data.email"]}' \
    >"$TOPICS/test-svc/exact/topic-details.json"
# An Avro topic whose records are CloudEvents (docs/avro.md).
mkdir -p "$TOPICS/test-svc/avro-ce"
cat >"$TOPICS/test-svc/avro-ce/event.avsc" <<'EOF'
{"type": "record", "name": "OrderEvent", "namespace": "test", "fields": [
  {"name": "specversion", "type": "string"}, {"name": "id", "type": "string"},
  {"name": "source", "type": "string"}, {"name": "type", "type": "string"},
  {"name": "tenantid", "type": "string"},
  {"name": "data", "type": {"type": "record", "name": "OrderData", "fields": [
    {"name": "amount", "type": "int"}, {"name": "email", "type": "string"}]}}]}
EOF
cat >"$TOPICS/test-svc/avro-ce/topic-details.json" <<EOF
{"topic": "$AVRO_TOPIC", "team": "test-svc", "tenancy": "multi", "format": "avro",
 "schema": "event.avsc", "tenant": ["tenantid"], "pii": ["data.email"]}
EOF
ln -s "$ES_PLUGIN_DIR/file.so" "$PLUGINS/"
ln -s "$ES_PLUGIN_DIR/https.so" "$PLUGINS/"
# A test endpoint that never answers: it takes connections and holds them.
python3 -c '
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])
' >"$ES_TMP/hole.port" &
ES_PIDS+=("$!")
for _ in $(seq 50); do [ -s "$ES_TMP/hole.port" ] && break; sleep 0.1; done
HOLE_PORT=$(cat "$ES_TMP/hole.port")
ln -s "$BUILD_DIR/tests/e2e/.libs/samplefilter.so" "$PLUGINS/"

config() { # $1 = topics dir
    es_config "ob-$RANDOM" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$PLUGINS\", \"state_dir\": \"$ES_TMP/state\",
  \"topics_dir\": \"$1\",
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"instances\": {
    \"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}},
    \"aout\": {\"plugin\": \"file\", \"config\": {\"path\": \"$AOUT\"}},
    \"probe\": {\"plugin\": \"file\", \"config\": {\"path\": \"$PROBE\"}, \"test_endpoint\": true},
    \"stuck\": {\"plugin\": \"https\", \"test_endpoint\": true, \"config\": {
       \"url\": \"https://127.0.0.1:$HOLE_PORT/hook\", \"connect_timeout_ms\": 5000,
       \"tls\": {\"insecure_skip_verify\": true}}},
    \"f\": {\"plugin\": \"samplefilter\", \"config\": {\"drop_type\": \"spam\"}}},
  \"routes\": [{\"name\": \"orders\", \"topics\": [\"$TOPIC\"], \"require_tenant\": true,
                \"filters\": [\"f\"], \"destinations\": [\"out\"]},
               {\"name\": \"avro-orders\", \"topics\": [\"$AVRO_TOPIC\", \"ob-avro-late\", \"ob-exact\"], \"destinations\": [\"aout\"]}]
}"
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
code() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$@"; }

# --- a bad topic-details.json stops startup, naming the file and the key
BAD="$ES_TMP/bad-topics"
mkdir -p "$BAD/test-svc/x"
echo '{"topic": "x", "team": "test-svc", "tenancy": "both", "format": "json", "tenant": ["key"]}' \
    >"$BAD/test-svc/x/topic-details.json"
rc=0
timeout 30 "$ES_BIN" -c "$(config "$BAD")" 2>"$ES_TMP/bad.log" || rc=$?
es_check "bad topic file: daemon exits non-zero ($rc)" test "$rc" -ne 0 -a "$rc" -ne 124
es_check "bad topic file: error names file, key and problem" \
    grep -qF "$BAD/test-svc/x/topic-details.json: tenancy: must be "'\"multi\" or \"single\", not \"both\"' "$ES_TMP/bad.log"
echo '{"topic": "x", "team": "other-team", "tenancy": "multi", "format": "json", "tenant": ["key"]}' \
    >"$BAD/test-svc/x/topic-details.json"
rc=0
out=$("$ES_BIN" --check-config "$(config "$BAD")" 2>&1) || rc=$?
es_check "--check-config fails on a bad topic file" test "$rc" -ne 0
es_check "team must be the folder's team" grep -qF "$BAD/test-svc/x/topic-details.json: team: \"other-team\" is not the team folder" <<<"$out"

# --- the daemon with the onboarded topics
CONFIG=$(config "$TOPICS")
es_start_daemon "$CONFIG"
es_eq "topics need the token" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/topics")"
api "$URL/v1/topics" >"$ES_TMP/topics.json"
es_eq "GET /v1/topics lists the seed and test topics" 35 "$(jq '.topics | length' "$ES_TMP/topics.json")"
es_eq "a seed topic with its tenant spec" '["tenantid","data.tenantId","key"]' \
    "$(jq -c '.topics[] | select(.topic=="eventzr.marketplace.listing.created.v1") | .tenant' "$ES_TMP/topics.json")"
es_eq "schemas: only Avro topics" '["ob-avro","ob-avro-ce"]' "$(api "$URL/v1/schemas" | jq -c '[.schemas[].topic]')"
es_eq "schema of an Avro topic" '"Order"' "$(api "$URL/v1/schemas/ob-avro" | jq -c .name)"
es_eq "schema of a JSON topic: 404" 404 "$(code "$URL/v1/schemas/$TOPIC")"
es_eq "404 body is JSON" '"no onboarded Avro topic of that name"' "$(api "$URL/v1/schemas/nope" | jq -c .error)"

# --- topic testing dry run
TEST="$URL/v1/topics/$TOPIC/test"
es_eq "malformed JSON body: 400" 400 "$(code -X POST -d '{"specversion": ' "$TEST")"
es_eq "malformed JSON body: message" '"request body is not valid JSON (at byte 15)"' \
    "$(api -X POST -d '{"specversion": ' "$TEST" | jq -c .error)"
es_check "malformed JSON body: message with a position" grep -qE '^"request body is not valid JSON \(at byte [0-9]+\)"$' \
    <<<"$(api -X POST -d '{x}' "$TEST" | jq -c .error)"
es_eq "bad key type: 400" 400 "$(code -X POST -d '{"value": {}, "key": 5}' "$TEST")"
SAMPLE='{"specversion":"1.0","id":"d1","source":"t","type":"order","data":{"customer":{"org":"acme","phone":"555"},"email":"a@b.c","n":1}}'
api -X POST -d "$SAMPLE" "$TEST" >"$ES_TMP/dry.json"
es_eq "dry run: tenant from the onboarded spec" '"acme"' "$(jq -c .tenant "$ES_TMP/dry.json")"
es_eq "dry run: decoded event" '"a@b.c"' "$(jq -c .decoded.data.email "$ES_TMP/dry.json")"
es_eq "dry run: filter verdict" '"replace"' "$(jq -c '.routes[0].filters[0].verdict' "$ES_TMP/dry.json")"
es_eq "dry run: filter's effect in the output" '"yes"' "$(jq -c '.routes[0].outputs[0].event.filtered' "$ES_TMP/dry.json")"
es_eq "dry run: PII stripped" '["data.email","data.customer.phone"]' "$(jq -c '.routes[0].outputs[0].pii_stripped' "$ES_TMP/dry.json")"
es_eq "dry run: stripped event" '{"customer":{"org":"acme"},"n":1}' "$(jq -c '.routes[0].outputs[0].event.data' "$ES_TMP/dry.json")"
# A repeated key: every occurrence of a PII field goes (only the first did).
DUPPII='{"specversion":"1.0","id":"d4","source":"t","type":"order","data":{"customer":{"org":"acme","phone":"555"},"email":"a@b.c","n":1,"email":"again@b.c"}}'
es_eq "dry run: a tenant through a repeated key is none, and the reason says why" \
    '"no tenant found where the route looks for it: a key on the way to data.customer.org is given twice (which one is meant would be a guess)"' \
    "$(api -X POST -d '{"specversion":"1.0","id":"d5","source":"t","type":"order","data":{"customer":{"org":"a","org":"b"}}}' "$TEST" | jq -c '.routes[0].outputs[0].dead_letter')"
es_eq "dry run: a repeated PII key stripped in every place" '{"customer":{"org":"acme"},"n":1}' \
    "$(api -X POST -d "$DUPPII" "$TEST" | jq -c '.routes[0].outputs[0].event.data')"
es_eq "dry run: destinations" '["out"]' "$(jq -c '.routes[0].outputs[0].destinations' "$ES_TMP/dry.json")"
es_eq "dry run: nothing delivered" false "$(jq -c .delivered "$ES_TMP/dry.json")"
es_eq "dry run: dropped by the filter" '"drop" 0' \
    "$(api -X POST -d '{"value": {"specversion":"1.0","id":"d2","source":"t","type":"spam","data":{}}, "key": "k"}' "$TEST" |
        jq -r '"\(.routes[0].filters[0].verdict | tojson) \(.routes[0].outputs | length)"')"
es_eq "dry run: no tenant → would dead-letter" '"no tenant found where the route looks for it"' \
    "$(api -X POST -d '{"specversion":"1.0","id":"d3","source":"t","type":"order","data":{}}' "$TEST" | jq -c '.routes[0].outputs[0].dead_letter')"
es_eq "dry run: decode error" '"missing required attribute \"id\""' \
    "$(api -X POST -d '{"specversion":"1.0","source":"t","type":"x"}' "$TEST" | jq -c .decode_error)"
es_eq "dry run: binary mode with headers" '"h1"' \
    "$(api -X POST -d '{"value": "{\"customer\":{\"org\":\"o\"}}", "headers": {"ce_specversion":"1.0","ce_id":"h1","ce_source":"s","ce_type":"t","content-type":"application/json"}}' "$TEST" |
        jq -c '.routes[0].outputs[0].event.id')"
es_eq "dry run delivered nothing" 0 "$(es_count "$OUT")"

# --- topic testing with a real delivery to a test endpoint
api -X POST -d "{\"value\": $SAMPLE, \"deliver_to\": \"probe\"}" "$TEST" >"$ES_TMP/real.json"
es_eq "real delivery: status per output" '[{"route":"orders","event_id":"d1","status":"ok"}]' \
    "$(jq -c .delivery.results "$ES_TMP/real.json")"
es_eq "real delivery: delivered" true "$(jq -c .delivered "$ES_TMP/real.json")"
es_eq "real delivery: the endpoint's file got the event" 1 "$(es_count "$PROBE")"
es_eq "real delivery: filtered and PII-stripped at the endpoint" '"yes" {"customer":{"org":"acme"},"n":1}' \
    "$(jq -c '.filtered, .data' "$PROBE" | tr '\n' ' ' | sed 's/ $//')"
es_eq "real delivery: deliver_to in the query" ok \
    "$(api -X POST -d "$SAMPLE" "$TEST?deliver_to=probe" | jq -r '.delivery.results[0].status')"
es_eq "real delivery: second event at the endpoint" 2 "$(es_count "$PROBE")"
es_eq "real delivery: a dropped event is not delivered" '0 false' \
    "$(api -X POST -d '{"value": {"specversion":"1.0","id":"d9","source":"t","type":"spam","data":{}}, "deliver_to": "probe"}' "$TEST" |
        jq -r '"\(.delivery.events) \(.delivered)"')"
es_eq "real delivery: not a test endpoint → 403" 403 "$(code -X POST -d '{"value": {}, "deliver_to": "out"}' "$TEST")"
es_eq "real delivery: 403 names the flag" true \
    "$(api -X POST -d '{"value": {}, "deliver_to": "out"}' "$TEST" | jq '.error | contains("test_endpoint")')"
es_eq "real delivery: unknown instance → 404" 404 "$(code -X POST -d '{"value": {}, "deliver_to": "nope"}' "$TEST")"
es_eq "real delivery: bad timeout → 400" 400 "$(code -X POST -d '{"value": {}, "deliver_to": "probe", "timeout_ms": 0}' "$TEST")"
es_eq "real delivery: the pipeline's own sink got nothing" 0 "$(es_count "$OUT")"

# --- a test delivery that waits (an endpoint that never answers) holds up
# neither the probes nor the other calls, a dry run included (they go out
# together half a second in, with 2 s each: the old single-threaded API
# answered them only when the 4 s wait was over, and later the calls other
# than the probes still waited behind it)
api -X POST -d "{\"value\": $SAMPLE, \"deliver_to\": \"stuck\", \"timeout_ms\": 4000}" \
    "$TEST" >"$ES_TMP/stuck.json" &
STUCK=$!
sleep 0.5
curl -s --max-time 2 "$URL/health" >"$ES_TMP/p-health" &
P1=$!
curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/ready" >"$ES_TMP/p-ready" &
P2=$!
curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Authorization: Bearer $TOKEN" \
    "$URL/metrics" >"$ES_TMP/p-metrics" &
P3=$!
curl -s --max-time 2 -H "Authorization: Bearer $TOKEN" "$URL/v1/topics" >"$ES_TMP/p-topics" &
P4=$!
curl -s --max-time 2 -H "Authorization: Bearer $TOKEN" -X POST -d "$SAMPLE" "$TEST" >"$ES_TMP/p-dry" &
P5=$!
wait "$P1" "$P2" "$P3" "$P4" "$P5" || true
es_eq "while a test delivery waits: /health answers" ok "$(jq -r .status "$ES_TMP/p-health" 2>/dev/null)"
es_eq "while a test delivery waits: /ready answers" 200 "$(cat "$ES_TMP/p-ready")"
es_eq "while a test delivery waits: /metrics answers" 200 "$(cat "$ES_TMP/p-metrics")"
es_eq "while a test delivery waits: /v1/topics answers" 35 \
    "$(jq '.topics | length' "$ES_TMP/p-topics" 2>/dev/null)"
es_eq "while a test delivery waits: a dry run answers" '"acme"' \
    "$(jq -c .tenant "$ES_TMP/p-dry" 2>/dev/null)"
wait "$STUCK"
es_eq "the endpoint that never answers: reported as a timeout" '"timeout" false' \
    "$(jq -c '.delivery.results[0].status, .delivered' "$ES_TMP/stuck.json" | tr '\n' ' ' | sed 's/ $//')"

# --- an onboarded Avro topic: the pipeline decodes it with the .avsc, the
# dry run takes a base64 value
mkdir -p "$ES_TMP/avro"
/usr/bin/python3 - "$ES_TMP/avro" "$TOPICS/test-svc/avro-ce/event.avsc" <<'PY'
import base64, io, sys
import avro.io, avro.schema
schema = avro.schema.parse(open(sys.argv[2]).read())
def enc(i):
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write({"specversion": "1.0", "id": "av%d" % i,
        "source": "s", "type": "order", "tenantid": "tn%d" % (i % 2),
        "data": {"amount": i, "email": "x%d@example.com" % i}}, avro.io.BinaryEncoder(buf))
    return buf.getvalue()
for i in range(5):
    open("%s/ev%d.bin" % (sys.argv[1], i), "wb").write(enc(i))
open("%s/sample.b64" % sys.argv[1], "w").write(base64.b64encode(enc(42)).decode())
PY
kcat -P -b "$BOOTSTRAP" -t $AVRO_TOPIC -z none "$ES_TMP"/avro/ev{0,1,2,3,4}.bin
es_wait_lines "$AOUT" 5 30 || true
es_eq "onboarded Avro topic: the pipeline decoded every record" 5 "$(es_count "$AOUT")"
es_eq "onboarded Avro topic: JSON out, PII stripped" '{"amount":3}' \
    "$(jq -c 'select(.id=="av3") | .data' "$AOUT")"
es_eq "onboarded Avro topic: tenant attribute kept" '"tn1"' "$(jq -c 'select(.id=="av3") | .tenantid' "$AOUT")"
# Stripping PII edits the text: the numbers stay as written (a reprint of
# cJSON's tree gave 1.2345678901234567e+19 and 1).
EXACT='{"specversion":"1.0","id":"x1","source":"t","type":"order","data":{"n":12345678901234567891,"email":"a@b.c","f":1.0,"s":"\u00e9"}}'
printf 'k1\t%s\n' "$EXACT" | kcat -P -b "$BOOTSTRAP" -t ob-exact -K '\t' -z none
es_wait_lines "$AOUT" 6 30 || true
es_eq "PII stripped, every other byte as it came" \
    '{"specversion":"1.0","id":"x1","source":"t","type":"order","data":{"n":12345678901234567891,"f":1.0,"s":"\u00e9"}}' \
    "$(grep -F '"id":"x1"' "$AOUT")"
# The dry run shows and delivers those bytes too (it printed cJSON's tree,
# wrapped or not).
STRIPPED='{"specversion":"1.0","id":"x1","source":"t","type":"order","data":{"n":12345678901234567891,"f":1.0,"s":"\u00e9"}}'
api -X POST -d "$EXACT" "$URL/v1/topics/ob-exact/test" >"$ES_TMP/exact.json"
es_check "dry run: the decoded event as sent" grep -qF "\"decoded\":$EXACT," "$ES_TMP/exact.json"
es_check "dry run: the output as the pipeline delivers it" grep -qF "\"event\":$STRIPPED," "$ES_TMP/exact.json"
api -X POST -d "{\"value\": $EXACT, \"key\": \"k1\", \"deliver_to\": \"probe\"}" \
    "$URL/v1/topics/ob-exact/test" >"$ES_TMP/exact.json"
es_eq "dry run, wrapped: delivered byte for byte" "ok $STRIPPED" \
    "$(jq -r '.delivery.results[0].status' "$ES_TMP/exact.json") $(tail -1 "$PROBE")"
# A binary-mode record's JSON data is carried as its bytes too.
api -X POST -d '{"value": "{\"n\":12345678901234567891,\"f\":1.0}", "key": "k1", "headers": {"ce_specversion":"1.0","ce_id":"h2","ce_source":"s","ce_type":"t","content-type":"application/json"}}' \
    "$URL/v1/topics/ob-exact/test" >"$ES_TMP/exact.json"
es_check "binary mode: JSON data as it came" grep -qF \
    '"decoded":{"specversion":"1.0","id":"h2","source":"s","type":"t","datacontenttype":"application/json","data":{"n":12345678901234567891,"f":1.0}}' \
    "$ES_TMP/exact.json"
ATEST="$URL/v1/topics/$AVRO_TOPIC/test"
api -X POST -d "{\"value_base64\": \"$(cat "$ES_TMP/avro/sample.b64")\", \"deliver_to\": \"probe\"}" "$ATEST" >"$ES_TMP/adry.json"
es_eq "Avro dry run: format" '"avro"' "$(jq -c .format "$ES_TMP/adry.json")"
es_eq "Avro dry run: decoded" '{"amount":42,"email":"x42@example.com"}' "$(jq -c .decoded.data "$ES_TMP/adry.json")"
es_eq "Avro dry run: tenant" '"tn0"' "$(jq -c .tenant "$ES_TMP/adry.json")"
es_eq "Avro dry run: PII stripped in the output" '["data.email"]' "$(jq -c '.routes[0].outputs[0].pii_stripped' "$ES_TMP/adry.json")"
es_eq "Avro dry run: delivered to the test endpoint" '"ok" 4' \
    "$(jq -r '.delivery.results[0].status | tojson' "$ES_TMP/adry.json") $(es_count "$PROBE")"
es_eq "Avro dry run: the endpoint got JSON" '{"amount":42}' "$(tail -1 "$PROBE" | jq -c .data)"
es_check "Avro dry run: a JSON value is a decode error" test "$(api -X POST -d "$SAMPLE" "$ATEST" | jq -r '.decode_error | length')" -gt 0
es_eq "value_base64 must be base64" 400 "$(code -X POST -d '{"value_base64": "%%%"}' "$ATEST")"
es_eq "value_base64: what is wrong" "\"value_base64\" is not base64: character 4 follows the '=' padding" \
    "$(api -X POST -d '{"value_base64": "AAA=AAAA"}' "$ATEST" | jq -r .error)"
es_eq "real delivery without a route: the decoded event" 'ok null' \
    "$(api -X POST -d "$SAMPLE" "$URL/v1/topics/ob-unrouted/test?deliver_to=probe" | jq -r '"\(.delivery.results[0].status) \(.delivery.results[0].route)"')"
es_eq "real delivery without a route: at the endpoint" '"d1"' "$(tail -1 "$PROBE" | jq -c .id)"

# --- real traffic: tenant and PII at the sink, usage equal to the sink
gen() { # $1 = first id, $2 = count
    python3 - "$1" "$2" <<'PY'
import json, sys
first, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(first, first + n):
    ev = {"specversion": "1.0", "id": "e%d" % i, "source": "t",
          "type": "spam" if i % 5 == 0 else "order",
          "data": {"customer": {"org": "tenant-%d" % (i % 3), "phone": "555-%d" % i},
                   "email": "u%d@example.com" % i, "n": i}}
    print(json.dumps(ev))
PY
}
gen 1 60 >"$ES_TMP/ev1.txt"
es_produce $TOPIC "$ES_TMP/ev1.txt"
es_wait_lines "$OUT" 48 30 || true
sleep 1
es_eq "sink got the non-spam events" 48 "$(es_count "$OUT")"
es_check "no PII reached the sink" bash -c "! grep -qE 'example.com|555-' '$OUT'"
es_eq "filter's effect at the sink" 48 "$(grep -c '"filtered":"yes"' "$OUT")"

usage_check() { # $1 = label
    api "$URL/v1/usage" >"$ES_TMP/usage.json"
    es_eq "$1: delivered events = sink lines" "$(es_count "$OUT")" \
        "$(jq '[.delivered[] | select(.topic=="'$TOPIC'") | .events] | add' "$ES_TMP/usage.json")"
    es_eq "$1: delivered bytes = sink bytes" "$(($(wc -c <"$OUT") - $(es_count "$OUT")))" \
        "$(jq '[.delivered[] | select(.topic=="'$TOPIC'") | .bytes] | add' "$ES_TMP/usage.json")"
    for t in 0 1 2; do
        es_eq "$1: tenant-$t delivered" "$(grep -c "\"org\":\"tenant-$t\"" "$OUT")" \
            "$(api "$URL/v1/usage?tenant=tenant-$t&topic=$TOPIC" | jq '.delivered[0].events')"
    done
}
usage_check "usage"
es_eq "usage: consumed counts every event" 60 \
    "$(jq '[.consumed[] | select(.topic=="'$TOPIC'") | .events] | add' "$ES_TMP/usage.json")"
es_eq "usage: consumed bytes = produced bytes" "$(($(wc -c <"$ES_TMP/ev1.txt") - 60))" \
    "$(jq '[.consumed[] | select(.topic=="'$TOPIC'") | .bytes] | add' "$ES_TMP/usage.json")"
es_eq "usage: filter by an unknown tenant" '0 0' \
    "$(api "$URL/v1/usage?tenant=nobody" | jq -r '"\(.consumed | length) \(.delivered | length)"')"

# --- restart: the usage numbers survive and keep counting
es_stop_daemon TERM
: >"$ES_DAEMON_LOG"
es_start_daemon "$CONFIG" "$ES_DAEMON_LOG"
usage_check "after restart"
gen 61 15 >"$ES_TMP/ev2.txt"
es_produce $TOPIC "$ES_TMP/ev2.txt"
es_wait_lines "$OUT" 60 30 || true
sleep 1
usage_check "after restart and more events"

# --- live changes: an added folder, a changed PII list, a bad edit
mkdir -p "$TOPICS/late-svc/late"
echo '{"topic": "ob-late", "team": "late-svc", "tenancy": "multi", "format": "json", "tenant": ["key"], "pii": ["data.secret"]}' \
    >"$TOPICS/late-svc/late/topic-details.json"
sed -i 's/"data.customer.phone"\]/"data.customer.phone", "data.n"]/' "$TOPICS/test-svc/orders/topic-details.json"
es_wait_log "topic onboarded topic=ob-late" 15 || true
es_wait_log "topic changed topic=$TOPIC" 15 || true
es_eq "added folder picked up live" '"late-svc"' "$(api "$URL/v1/topics" | jq -c '.topics[] | select(.topic=="ob-late") | .team')"
es_eq "changed PII list applies live" '["data.email","data.customer.phone","data.n"]' \
    "$(api -X POST -d "$SAMPLE" "$TEST" | jq -c '.routes[0].outputs[0].pii_stripped')"
echo '{"topic": "ob-late", "team": "late-svc", "tenancy": "multi", "format": "xml", "tenant": ["key"]}' \
    >"$TOPICS/late-svc/late/topic-details.json"
es_wait_log "late/topic-details.json: format: must be" 15 || true
es_check "bad edit logged with file and key" grep -F "late-svc/late/topic-details.json: format: must be" "$ES_DAEMON_LOG"
es_check "bad edit: previous definition kept" grep -qF "(keeping the previous definition)" "$ES_DAEMON_LOG"
es_eq "bad edit keeps the old definition" '"json"' "$(api "$URL/v1/topics" | jq -c '.topics[] | select(.topic=="ob-late") | .format')"
# an Avro topic onboarded while running: the decoder is rebuilt
mkdir -p "$TOPICS/test-svc/avro-late"
cp "$TOPICS/test-svc/avro-ce/event.avsc" "$TOPICS/test-svc/avro-late/"
sed 's/"ob-avro-ce"/"ob-avro-late"/' "$TOPICS/test-svc/avro-ce/topic-details.json" \
    >"$TOPICS/test-svc/avro-late/topic-details.json"
es_wait_log "Avro decoder rebuilt" 15 || true
es_check "Avro decoder rebuilt for a live-onboarded Avro topic" grep -q "Avro decoder rebuilt" "$ES_DAEMON_LOG"
LINES=$(es_count "$AOUT")
kcat -P -b "$BOOTSTRAP" -t ob-avro-late -z none "$ES_TMP"/avro/ev{0,1}.bin
es_wait_lines "$AOUT" $((LINES + 2)) 30 || true
es_eq "live-onboarded Avro topic decoded by the pipeline" 2 "$(($(es_count "$AOUT") - LINES))"
es_check "token never logged" bash -c "! grep -q '$TOKEN' '$ES_DAEMON_LOG'"
es_stop_daemon TERM
es_finish
