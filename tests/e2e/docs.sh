#!/usr/bin/env bash
# The docs' examples, run: every config example of each doc (merged per
# doc, paths made local by doc_examples.py) passes --check-config; the
# topic-details.json of onboarding.md is taken; the filter contract's
# example in lua-filters.md drops, reroutes, redacts and splits as the doc
# says, through the daemon, and its --dry-run example prints what it
# shows; every CloudEvent shown in the docs is one the
# daemon takes (the topic test API); api.md's subscription is accepted.
. "$(dirname "$0")/lib.sh"

DOCS=$ES_TMP/docs
PLUGINS=$ES_TMP/plugins
EXAMPLES="python3 $SRC_DIR/tests/e2e/doc_examples.py"
mkdir -p "$DOCS" "$PLUGINS"

# plugins.md's example plugin beside the build's own
ln -s "$ES_PLUGIN_DIR"/*.so "$PLUGINS/"
cc -std=c11 -shared -fPIC -I"$SRC_DIR/host/include" \
    $(pkg-config --cflags libcjson) -o "$PLUGINS/counting.so" \
    "$SRC_DIR/docs/examples/counting_sink.c" $(pkg-config --libs libcjson)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DOCS/ca-key.pem" \
    -out "$DOCS/ca.pem" -days 2 -subj /CN=docs-ca 2>/dev/null

# --- config examples
$EXAMPLES configs "$DOCS" "$PLUGINS" >"$DOCS/configs.txt"
es_check "config examples found in the docs" test "$(wc -l <"$DOCS/configs.txt")" -ge 10
while IFS=$'\t' read -r doc config; do
    got=$("$ES_BIN" --check-config "$config" 2>&1 | grep -v 'level=' | tail -1 || true)
    es_check "$doc: its config examples pass --check-config ($got)" \
        grep -q "^$config: OK (" <<<"$got"
done <"$DOCS/configs.txt"

# --- onboarding.md's topic-details.json, in place of the shipped one
TOPICS=$ES_TMP/topics
cp -r "$SRC_DIR/service-teams-topics" "$TOPICS"
$EXAMPLES block docs/onboarding.md '"team": "marketplace-svc"' \
    >"$TOPICS/marketplace-svc/order-created/topic-details.json"
es_check "onboarding.md's example differs from the shipped file (so it is tested)" \
    bash -c "! cmp -s '$TOPICS/marketplace-svc/order-created/topic-details.json' \
        '$SRC_DIR/service-teams-topics/marketplace-svc/order-created/topic-details.json'"

# --- lua-filters.md's contract example, through the daemon (the routes it
# reroutes to consume nothing themselves: topics [], config.md)
$EXAMPLES block docs/lua-filters.md 'if tenant == "tenant-test"' >"$DOCS/contract.lua"
es_start_broker -t doc.contract:1
PORT=$(es_free_port)
TOKEN=docs-$RANDOM
URL=http://127.0.0.1:$PORT
CONFIG=$(es_config docs "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\",
     \"auto.offset.reset\": \"earliest\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"topics_dir\": \"$TOPICS\",
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"instances\": {
    \"contract\": {\"plugin\": \"lua\", \"config\": {\"script\": \"$DOCS/contract.lua\"}},
    \"main\": {\"plugin\": \"file\", \"config\": {\"path\": \"$DOCS/main.jsonl\"}},
    \"disputes\": {\"plugin\": \"file\", \"config\": {\"path\": \"$DOCS/disputes.jsonl\"}},
    \"audit\": {\"plugin\": \"file\", \"config\": {\"path\": \"$DOCS/audit.jsonl\"}}},
  \"routes\": [
    {\"name\": \"main\", \"topics\": [\"doc.contract\"], \"filters\": [\"contract\"],
     \"destinations\": [\"main\"]},
    {\"name\": \"disputes\", \"topics\": [], \"destinations\": [\"disputes\"]},
    {\"name\": \"audit\", \"topics\": [], \"destinations\": [\"audit\"]}]
}")
es_check "docs: the test's own config passes --check-config" \
    "$ES_BIN" --check-config "$CONFIG"
es_start_daemon "$CONFIG"
curl -s -H "Authorization: Bearer $TOKEN" "$URL/v1/topics" >"$DOCS/topics.json"
es_check "onboarding.md's topic-details.json is loaded as written" \
    python3 - "$DOCS/topics.json" "$TOPICS/marketplace-svc/order-created/topic-details.json" <<'PY'
import json, sys
topics = json.load(open(sys.argv[1]))["topics"]
doc = json.load(open(sys.argv[2]))
got = [t for t in topics if t["topic"] == doc["topic"]]
assert len(got) == 1, got
assert all(got[0][k] == v for k, v in doc.items()), (got[0], doc)
PY

ev() { # ID TYPE TENANT DATA
    printf '{"specversion":"1.0","id":"%s","source":"docs","type":"%s","tenantid":"%s","data":%s}\n' "$@"
}
{
    ev c1 eventzr.marketplace.order.shipped.v1 tenant-test '{"id":"o-0"}'
    ev c2 eventzr.marketplace.dispute.opened.v1 acme '{"id":"d-1"}'
    ev c3 eventzr.user.profile.updated.v1 acme '{"email":"ann@example.com","name":"Ann"}'
    ev c4 eventzr.marketplace.order.created.v1 acme '{"id":"o-1","total":12.50}'
    ev c5 eventzr.marketplace.listing.created.v1 acme '{"id":"l-1"}'
} >"$DOCS/contract-in.jsonl"
es_produce doc.contract "$DOCS/contract-in.jsonl"
es_wait_lines "$DOCS/main.jsonl" 3 30 || true
es_wait_lines "$DOCS/disputes.jsonl" 1 10 || true
es_wait_lines "$DOCS/audit.jsonl" 1 10 || true
sleep 0.5
es_check "contract example: drop, reroute, redact and split as documented" \
    python3 - "$DOCS" <<'PY'
import json, sys
d = sys.argv[1]
read = lambda name: [json.loads(l) for l in open("%s/%s.jsonl" % (d, name))]
main, disputes, audit = read("main"), read("disputes"), read("audit")
ids = [e["id"] for e in main]
assert ids == ["c3", "c4", "c5"], ("main", ids)        # c1 (tenant-test) dropped
assert [e["id"] for e in disputes] == ["c2"], disputes  # rerouted to "disputes"
assert main[0]["data"] == {"email": "[REDACTED]", "name": "Ann"}, main[0]
assert main[1]["data"] == {"id": "o-1", "total": 12.50}, main[1]
assert [(e["id"], e["data"]) for e in audit] == [("c4:audit", {"orderId": "o-1"})], audit
PY

# --- lua-filters.md's --dry-run example prints the line it shows
$EXAMPLES block docs/lua-filters.md 'dry-run eventzr.user' |
    sed "s|/tmp/|$DOCS/|g" >"$DOCS/try.sh"
es_eq "lua-filters.md's --dry-run example prints what the doc shows" \
    "$(sed -n 's/^# //p' "$DOCS/try.sh" | tail -1)" \
    "$(cd "$BUILD_DIR" && SRC=$SRC_DIR bash "$DOCS/try.sh")"

# --- every CloudEvent the docs show is one the daemon takes
$EXAMPLES events >"$DOCS/events.txt"
es_check "CloudEvent examples found in the docs" test "$(wc -l <"$DOCS/events.txt")" -ge 10
bad=0
while IFS=$'\t' read -r where event; do
    answer=$(curl -s -H "Authorization: Bearer $TOKEN" -X POST \
        "$URL/v1/topics/doc.events/test" --data-binary "$event")
    if ! python3 -c 'import json,sys; a=json.loads(sys.argv[1]); sys.exit(0 if "decoded" in a and "decode_error" not in a else 1)' "$answer"; then
        echo "$where: $answer" >&2
        bad=$((bad + 1))
    fi
done <"$DOCS/events.txt"
es_eq "every CloudEvent example decodes" 0 "$bad"

# --- api.md's subscription body
$EXAMPLES block docs/api.md '"id": "acme-orders"' >"$DOCS/subscription.json"
code=$(curl -s -o "$DOCS/sub-answer.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    -X POST "$URL/v1/subscriptions" --data-binary @"$DOCS/subscription.json")
es_eq "api.md's subscription example is accepted ($(head -c 200 "$DOCS/sub-answer.json"))" 201 "$code"
es_check "its token is masked in the answer" bash -c "! grep -q s3cr3t '$DOCS/sub-answer.json'"
es_eq "and it can be deleted" 204 "$(curl -s -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $TOKEN" -X DELETE "$URL/v1/subscriptions/acme-orders")"
# Its filter by path instead: this config sets no subscriptions.scripts_dir
jq '.id = "acme-path" | .filter.config = {"script": "/etc/passwd"}' \
    "$DOCS/subscription.json" >"$DOCS/sub-path.json"
code=$(curl -s -o "$DOCS/sub-answer.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    -X POST "$URL/v1/subscriptions" --data-binary @"$DOCS/sub-path.json")
es_eq "a filter script by path without scripts_dir: refused as api.md says" \
    '400 filter.config.script: a path is taken only under subscriptions.scripts_dir, which the config does not set; give the script'"'"'s text in "source"' \
    "$code $(jq -r .error "$DOCS/sub-answer.json")"
es_stop_daemon TERM
es_finish
