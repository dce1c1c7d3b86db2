#!/usr/bin/env bash
# Topic onboarding and the /v1 admin API against the running daemon
# (docs/onboarding.md): a bad topic-details.json stops startup naming file
# and key; onboarded tenant spec and PII stripping at the sink; topic
# testing dry run (filter effect, PII stripped, nothing delivered); schemas;
# usage numbers equal what the sink received and survive a restart; an
# added or changed folder is picked up live, a bad change keeps the old.
. "$(dirname "$0")/lib.sh"

TOPIC=ob-orders
es_start_broker -t $TOPIC:2
PORT=$((20000 + RANDOM % 20000))
TOKEN=ob-$RANDOM$RANDOM
URL=http://127.0.0.1:$PORT
OUT="$ES_TMP/out.jsonl"
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
ln -s "$ES_PLUGIN_DIR/file.so" "$PLUGINS/"
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
    \"f\": {\"plugin\": \"samplefilter\", \"config\": {\"drop_type\": \"spam\"}}},
  \"routes\": [{\"name\": \"orders\", \"topics\": [\"$TOPIC\"], \"require_tenant\": true,
                \"filters\": [\"f\"], \"destinations\": [\"out\"]}]
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
es_eq "GET /v1/topics lists the seed and test topics" 33 "$(jq '.topics | length' "$ES_TMP/topics.json")"
es_eq "a seed topic with its tenant spec" '["tenantid","data.tenantId","key"]' \
    "$(jq -c '.topics[] | select(.topic=="eventzr.marketplace.listing.created.v1") | .tenant' "$ES_TMP/topics.json")"
es_eq "schemas: only Avro topics" '["ob-avro"]' "$(api "$URL/v1/schemas" | jq -c '[.schemas[].topic]')"
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
es_check "token never logged" bash -c "! grep -q '$TOKEN' '$ES_DAEMON_LOG'"
es_stop_daemon TERM
es_finish
