#!/usr/bin/env bash
# Subscriptions (endpoint configuration) through the admin API with curl:
# auth and JSON errors, validation naming the key, a new subscription gets
# only later events, secrets never shown or logged, live update and delete,
# per-tenant consumer groups for single-tenant topics, restart keeps the
# subscriptions and resumes where they were; then the tenant isolation
# property over random tenants and subscriptions (subs_property.py).
. "$(dirname "$0")/lib.sh"

MULTI=sub.orders   # onboarded, tenancy multi
SINGLE=sub.ledger  # onboarded, tenancy single
# Output topics exist from the start: kcat -e waits on a missing one (the
# property's outputs are looked up before they are read).
es_start_broker -t "$MULTI:2" -t "$SINGLE:2" -t prop.m1:2 -t prop.m2:2 \
    -t prop.m3:2 -t prop.s1:2 -t prop.s2:2 -t eventstream.dlq:1 \
    -t out.acme:1 -t out.acme2:1 -t out.initech:1 -t out.script:1
PORT=$(es_free_port)
TOKEN=tok-$RANDOM$RANDOM
SECRET=sekrit-$RANDOM$RANDOM
URL=http://127.0.0.1:$PORT
TOPICS="$ES_TMP/topics"
for t in "$MULTI:multi" "$SINGLE:single" prop.m1:multi prop.m2:multi \
    prop.m3:multi prop.s1:single prop.s2:single; do
    mkdir -p "$TOPICS/test-svc/${t%%:*}"
    printf '{"topic": "%s", "team": "test-svc", "tenancy": "%s", "format": "json", "tenant": ["tenantid"]}\n' \
        "${t%%:*}" "${t##*:}" >"$TOPICS/test-svc/${t%%:*}/topic-details.json"
done
# Scripts a subscription may name by path live in subscriptions.scripts_dir
FILTERS="$ES_TMP/filters"
mkdir -p "$FILTERS"
echo "function filter(ev) if ev.data.n % 2 == 1 then return 'drop' end end" >"$FILTERS/even.lua"
echo "function filter(ev) return 'keep' end" >"$ES_TMP/outside.lua"
ln -s ../outside.lua "$FILTERS/link.lua"
CONFIG=$(es_config subs "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"topics_dir\": \"$TOPICS\",
  \"retry\": {\"initial_backoff_ms\": 100, \"max_backoff_ms\": 400, \"max_attempts\": 8},
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"subscriptions\": {\"scripts_dir\": \"$FILTERS\"},
  \"instances\": {\"all\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ES_TMP/all.jsonl\"}}},
  \"routes\": [{\"name\": \"all\", \"topics\": [\"$MULTI\"], \"destinations\": [\"all\"]}]
}")

# api METHOD PATH [BODY]: the body on stdout, the status in $ES_TMP/code
api() {
    curl -s -o "$ES_TMP/body" -w '%{http_code}' -X "$1" \
        -H "Authorization: Bearer $TOKEN" ${3:+-d "$3"} "$URL$2" >"$ES_TMP/code"
    cat "$ES_TMP/body"
}
code() { cat "$ES_TMP/code"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# events TOPIC TENANT FIRST COUNT: CloudEvents keyed by tenant
events() {
    local i
    for i in $(seq "$3" $(($3 + $4 - 1))); do
        printf '%s\t{"specversion":"1.0","id":"%s-%s","source":"e2e","type":"t","tenantid":"%s","data":{"n":%d}}\n' \
            "$2" "$2" "$i" "$2" "$i"
    done >"$ES_TMP/ev.txt"
    es_produce "$1" "$ES_TMP/ev.txt"
}
# ids TOPIC: the distinct event ids on an output topic, sorted
ids() {
    es_consume_all "$1" "$ES_TMP/out.txt"
    python3 -c 'import json,sys; print("\n".join(sorted({json.loads(l)["id"] for l in open(sys.argv[1]) if l.strip()})))' "$ES_TMP/out.txt"
}
# wait_count TOPIC N: until the output topic holds N records (30 s)
wait_count() {
    local i
    for i in $(seq 1 60); do
        es_consume_all "$1" "$ES_TMP/wc.txt"
        [ "$(es_count "$ES_TMP/wc.txt")" -ge "$2" ] && return 0
        sleep 0.5
    done
    return 1
}
kafka_dest() { # TOPIC: a kafka sink destination with a secret property
    printf '{"type": "kafka", "config": {"brokers": "%s", "topic": "%s", "properties": {"sasl.password": "%s"}}}' \
        "$BOOTSTRAP" "$1" "$SECRET"
}

es_start_daemon "$CONFIG"

# --- auth and JSON errors
es_log "auth and JSON errors"
es_eq "no token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "$URL/v1/subscriptions")"
es_eq "list without token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/subscriptions")"
msg=$(api POST /v1/subscriptions '{"tenant": "a",')
es_eq "malformed JSON: 400" 400 "$(code)"
es_check "malformed JSON: message" grep -q '"error":"request body is not valid JSON' <<<"$msg"
msg=$(api POST /v1/subscriptions "{\"tenant\": \"a\", \"topics\": [\"$MULTI\"], \"destinaton\": {}}")
es_eq "unknown key: 400 naming it" '400 {"error":"destinaton: unknown key"}' "$(code) $msg"
msg=$(api POST /v1/subscriptions "{\"tenant\": \"a\", \"topics\": [\"$MULTI\"], \"destination\": $(kafka_dest x), \"tenant\": \"b\"}")
es_eq "a key given twice: 400 naming it" '400 {"error":"tenant: is given twice in its object"}' "$(code) $msg"
# an array's elements have no names: this crashed the daemon (strcmp(NULL))
msg=$(api POST /v1/subscriptions "{\"tenant\": \"a\", \"topics\": [\"$MULTI\"], \"destination\": $(kafka_dest x), \"park\": [\"topic\"]}")
es_eq "park as an array: 400 naming it" '400 {"error":"park: must be an object"}' "$(code) $msg"
msg=$(api POST /v1/subscriptions "{\"topics\": [\"$MULTI\"], \"destination\": $(kafka_dest x)}")
es_eq "missing tenant: 400" '400 {"error":"tenant: is required"}' "$(code) $msg"
msg=$(api POST /v1/subscriptions "{\"tenant\": \"a\", \"topics\": [\"$MULTI\"], \"destination\": {\"type\": \"kafka\", \"config\": {\"brokers\": \"$BOOTSTRAP\", \"topic\": \"x\", \"compresion\": \"lz4\"}}}")
es_eq "plugin config error: 400 with the plugin's message" '400 {"error":"destination.config: unknown key \"compresion\""}' "$(code) $msg"
msg=$(api POST /v1/subscriptions "{\"tenant\": \"a\", \"topics\": [\"nope.topic\"], \"destination\": $(kafka_dest x)}")
es_eq "unknown topic: 400" 400 "$(code)"
es_check "unknown topic: message names it" grep -q 'topics\[0\]: \\"nope.topic\\" is not an onboarded topic' <<<"$msg"
msg=$(api POST /v1/subscriptions "{\"tenant\": \"a\", \"topics\": [\"$MULTI\"], \"destination\": {\"type\": \"file\", \"config\": {}}}")
es_eq "destination type outside https/kafka/s3: 400" 400 "$(code)"
msg=$(api POST /v1/subscriptions "{\"tenant\": \"a\", \"topics\": [\"$MULTI\"], \"destination\": $(kafka_dest x), \"filter\": {\"type\": \"lua\", \"config\": {\"source\": \"function filter(ev) return ( end\"}}}")
es_eq "bad inline Lua: 400" 400 "$(code)"
es_check "bad inline Lua: the plugin's message" grep -q 'filter.config: script' <<<"$msg"
# a filter script by path: only inside subscriptions.scripts_dir
script_sub() { # $1 = the script's path
    api POST /v1/subscriptions "{\"tenant\": \"a\", \"topics\": [\"$MULTI\"], \"destination\": $(kafka_dest x), \"filter\": {\"type\": \"lua\", \"config\": {\"script\": \"$1\"}}}"
}
msg=$(script_sub "$ES_TMP/outside.lua")
es_eq "filter script outside scripts_dir: 400 naming both" \
    "400 {\"error\":\"filter.config.script: $ES_TMP/outside.lua is not under subscriptions.scripts_dir ($FILTERS)\"}" "$(code) $msg"
msg=$(script_sub "$FILTERS/../outside.lua")
es_eq "filter script: .. out of scripts_dir is refused" 400 "$(code)"
msg=$(script_sub "$FILTERS/link.lua")
es_eq "filter script: a symlink in scripts_dir to a file outside is refused" \
    "400 {\"error\":\"filter.config.script: $FILTERS/link.lua is not under subscriptions.scripts_dir ($FILTERS)\"}" "$(code) $msg"
msg=$(script_sub /etc/passwd)
es_check "filter script: /etc/passwd is refused before Lua reads it" \
    test "$(code)" = 400 -a -n "$(grep -F 'is not under subscriptions.scripts_dir' <<<"$msg")"
msg=$(script_sub "$FILTERS/missing.lua")
es_eq "filter script: a missing file in scripts_dir" \
    "400 {\"error\":\"filter.config.script: $FILTERS/missing.lua: No such file or directory\"}" "$(code) $msg"
es_eq "nothing was created by the failures" 0 "$(api GET /v1/subscriptions | jget 'len(d["subscriptions"])')"
es_eq "GET unknown id: 404" 404 "$(api GET /v1/subscriptions/nope >/dev/null; code)"
es_eq "DELETE unknown id: 404" 404 "$(api DELETE /v1/subscriptions/nope >/dev/null; code)"

# --- a new subscription gets only the events produced after it
es_log "a new subscription gets only the events produced after it"
events "$MULTI" acme 1 20 # before: never delivered to the subscription
es_wait_lines "$ES_TMP/all.jsonl" 20 30 || true
A=$(api POST /v1/subscriptions "{\"id\": \"acme-orders\", \"tenant\": \"acme\", \"topics\": [\"$MULTI\"], \"destination\": $(kafka_dest out.acme), \"description\": \"acme's orders\"}")
es_eq "create: 201" 201 "$(code)"
es_eq "create: id kept" acme-orders "$(jget 'd["id"]' <<<"$A")"
es_eq "create: active" active "$(jget 'd["status"]' <<<"$A")"
es_eq "duplicate id: 409" 409 "$(api POST /v1/subscriptions "{\"id\": \"acme-orders\", \"tenant\": \"acme\", \"topics\": [\"$MULTI\"], \"destination\": $(kafka_dest y)}" >/dev/null; code)"
events "$MULTI" acme 21 10
events "$MULTI" globex 1 10 # another tenant: never delivered to acme's
wait_count out.acme 10 || true
sleep 1
es_eq "only acme's events after creation arrive" "$(printf 'acme-%s\n' $(seq 21 30) | LC_ALL=C sort)" "$(ids out.acme)"

# --- a filter script by path, inside subscriptions.scripts_dir
api POST /v1/subscriptions "{\"id\": \"wayne-even\", \"tenant\": \"wayne\", \"topics\": [\"$MULTI\"], \"destination\": $(kafka_dest out.script), \"filter\": {\"type\": \"lua\", \"config\": {\"script\": \"$FILTERS/even.lua\"}}}" >/dev/null
es_eq "filter script inside scripts_dir: 201" 201 "$(code)"
events "$MULTI" wayne 1 10
wait_count out.script 5 || true
sleep 1
es_eq "filter script inside scripts_dir: its verdicts apply" \
    "$(printf 'wayne-%s\n' 2 4 6 8 10 | LC_ALL=C sort)" "$(ids out.script)"
api DELETE /v1/subscriptions/wayne-even >/dev/null
es_eq "filter script: deleted" 204 "$(code)"
es_check "filter script: the operator's file stays when the subscription goes" test -s "$FILTERS/even.lua"

# --- secrets are write-only
es_log "secrets are write-only"
G=$(api GET /v1/subscriptions/acme-orders)
es_eq "GET: 200" 200 "$(code)"
es_eq "GET masks the secret" '********' "$(jget 'd["destination"]["config"]["properties"]["sasl.password"]' <<<"$G")"
{ echo "$G"; api GET /v1/subscriptions; } >"$ES_TMP/gets.json"
es_check "GET never shows the secret" bash -c "! grep -q '$SECRET' '$ES_TMP/gets.json'"
es_check "the secret is never logged" bash -c "! grep -q '$SECRET' '$ES_DAEMON_LOG'"
# a number is a secret too (the kafka sink takes numeric properties)
N=$(api POST /v1/subscriptions "{\"id\": \"acme-num\", \"enabled\": false, \"tenant\": \"acme\", \"topics\": [\"$MULTI\"], \"destination\": {\"type\": \"kafka\", \"config\": {\"brokers\": \"$BOOTSTRAP\", \"topic\": \"out.num\", \"properties\": {\"sasl.password\": 424242}}}}")
es_eq "numeric secret: created" 201 "$(code)"
es_eq "numeric secret: masked" '********' "$(jget 'd["destination"]["config"]["properties"]["sasl.password"]' <<<"$N")"
api PUT /v1/subscriptions/acme-num "$N" >/dev/null
es_eq "numeric secret: PUT of the mask keeps the number" '200 424242' \
    "$(code) $(jget '[s for s in d["subscriptions"] if s["id"] == "acme-num"][0]["destination"]["config"]["properties"]["sasl.password"]' <"$ES_TMP/state/subscriptions.json")"
api DELETE /v1/subscriptions/acme-num >/dev/null
es_eq "state file is private (0600)" 600 "$(stat -c %a "$ES_TMP/state/subscriptions.json")"
es_eq "list by tenant" acme-orders "$(api GET '/v1/subscriptions?tenant=acme' | jget '",".join(s["id"] for s in d["subscriptions"])')"
es_eq "list by another tenant: empty" 0 "$(api GET '/v1/subscriptions?tenant=globex' | jget 'len(d["subscriptions"])')"

# --- update changes the destination live (the masked secret is kept)
es_log "update changes the destination live (the masked secret is kept)"
U=$(jget 'json.dumps(dict(d, destination=dict(d["destination"], config=dict(d["destination"]["config"], topic="out.acme2"))))' <<<"$G")
U=$(api PUT /v1/subscriptions/acme-orders "$U")
es_eq "PUT: 200" 200 "$(code)"
es_eq "PUT: new destination" out.acme2 "$(jget 'd["destination"]["config"]["topic"]' <<<"$U")"
es_check "PUT with the mask keeps the stored secret" grep -q "\"sasl.password\":[[:space:]]*\"$SECRET\"" "$ES_TMP/state/subscriptions.json"
es_eq "PUT keeps the start offsets" "$(jget 'd["start_offsets"]' <<<"$G")" "$(jget 'd["start_offsets"]' <<<"$U")"
events "$MULTI" acme 31 10
wait_count out.acme2 10 || true
sleep 1
es_eq "after the update, events go to the new destination" "$(printf 'acme-%s\n' $(seq 31 40) | LC_ALL=C sort)" "$(ids out.acme2)"
es_eq "and no more to the old one" 10 "$(ids out.acme | wc -l)"
msg=$(api PUT /v1/subscriptions/acme-orders '{"tenant": "acme", "topics": []}')
es_eq "PUT invalid: 400 and nothing changed" "400 out.acme2" "$(code) $(api GET /v1/subscriptions/acme-orders | jget 'd["destination"]["config"]["topic"]')"

# --- disable, enable, delete
es_log "disable, enable, delete"
api PUT /v1/subscriptions/acme-orders "$(jget 'json.dumps(dict(d, enabled=False))' <<<"$U")" >/dev/null
es_eq "disabled" "200 disabled" "$(code) $(api GET /v1/subscriptions/acme-orders | jget 'd["status"]')"
events "$MULTI" acme 41 5
sleep 2
es_eq "a disabled subscription gets nothing" 10 "$(ids out.acme2 | wc -l)"
api PUT /v1/subscriptions/acme-orders "$U" >/dev/null
events "$MULTI" acme 46 5
wait_count out.acme2 15 || true
sleep 1
es_eq "enabled again: only events after that" "$(printf 'acme-%s\n' $(seq 31 40) $(seq 46 50) | LC_ALL=C sort)" "$(ids out.acme2)"
es_eq "DELETE: 204" 204 "$(api DELETE /v1/subscriptions/acme-orders >/dev/null; code)"
es_eq "deleted: 404" 404 "$(api GET /v1/subscriptions/acme-orders >/dev/null; code)"
events "$MULTI" acme 51 5
sleep 2
es_eq "delete stops delivery" 15 "$(ids out.acme2 | wc -l)"

# --- deleting a subscription whose endpoint is failing: what it had in flight
es_log "deleting a subscription whose endpoint is failing"
# is still retried and dead-lettered (nothing lost), then it is released.
# Parking is off for it (with parking, its events would be parked instead:
# tests/e2e/subs_parking.sh)
api POST /v1/subscriptions "{\"id\": \"flaky\", \"tenant\": \"umbrella\", \"topics\": [\"$MULTI\"], \"destination\": {\"type\": \"https\", \"config\": {\"url\": \"http://127.0.0.1:1/down\"}}, \"park\": {\"enabled\": false}}" >/dev/null
es_eq "create flaky: 201" 201 "$(code)"
events "$MULTI" umbrella 1 5
for _ in $(seq 1 100); do
    curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" | grep -q '^es_route_consumed_total{route="flaky"} 5$' && break
    sleep 0.1
done
es_eq "delete while its events are being retried: 204" 204 "$(api DELETE /v1/subscriptions/flaky >/dev/null; code)"
es_check "its in-flight events are dead-lettered, not dropped" bash -c "
  for i in \$(seq 1 40); do
    timeout 10 kcat -C -b $BOOTSTRAP -t eventstream.dlq -o beginning -e -q -f '%h\n' 2>/dev/null |
      grep -c 'es_destination=flaky' | grep -qx 5 && exit 0
    sleep 0.5
  done; exit 1"
es_check "then its instance is released" es_wait_log "subscription instance released id=flaky" 20
es_check "released only after the delete" bash -c "grep -n 'subscription deleted id=flaky\|instance released id=flaky' '$ES_DAEMON_LOG' | head -1 | grep -q deleted"

# --- single-tenant topic: a consumer group per tenant
es_log "single-tenant topic"
S=$(api POST /v1/subscriptions "{\"tenant\": \"initech\", \"topics\": [\"$SINGLE\", \"$MULTI\"], \"destination\": $(kafka_dest out.initech), \"filter\": {\"type\": \"lua\", \"config\": {\"source\": \"function filter(ev) if ev.data.n % 2 == 0 then return 'drop' end end\"}}}")
es_eq "create with an inline filter: 201" 201 "$(code)"
SID=$(jget 'd["id"]' <<<"$S")
es_check "generated id" grep -qE '^sub-[0-9a-f]{16}$' <<<"$SID"
es_wait_log "consumer joined group=eventstreamd.initech" 30
events "$SINGLE" initech 1 10
events "$SINGLE" hooli 1 10
events "$MULTI" initech 11 10
wait_count out.initech 10 || true
sleep 1
es_eq "single + multi topics through the filter, own tenant only" \
    "$(printf 'initech-%s\n' 1 3 5 7 9 11 13 15 17 19 | LC_ALL=C sort)" "$(ids out.initech)"
curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" >"$ES_TMP/metrics.txt"
es_check "the tenant's group reads the single-tenant topic" grep -q "^es_consumer_lag{group=\"eventstreamd.initech\",topic=\"$SINGLE\"" "$ES_TMP/metrics.txt"
es_check "the daemon's group does not" bash -c "! grep -q '^es_consumer_lag{group=\"eventstreamd\",topic=\"$SINGLE\"' '$ES_TMP/metrics.txt'"
es_eq "per-subscription delivered counter" 10 "$(sed -n "s/^es_delivered_total{destination=\"$SID\"} //p" "$ES_TMP/metrics.txt")"
es_eq "per-subscription filtered counter" 10 "$(sed -n "s/^es_filtered_total{route=\"$SID\"} //p" "$ES_TMP/metrics.txt")"

# --- restart: subscriptions kept, delivery resumes where it was
es_log "restart"
es_stop_daemon TERM
events "$SINGLE" initech 21 4 # produced while the daemon is down
es_start_daemon "$CONFIG" "$ES_TMP/daemon2.log"
es_wait_log "consumer joined group=eventstreamd.initech" 30
es_eq "restart keeps the subscription" "active initech" "$(api GET "/v1/subscriptions/$SID" | jget 'd["status"] + " " + d["tenant"]')"
es_check "restored in the log" grep -q "subscription restored id=$SID" "$ES_TMP/daemon2.log"
wait_count out.initech 12 || true
sleep 1
es_eq "events produced while down are delivered after the restart" \
    "$(printf 'initech-%s\n' 1 3 5 7 9 11 13 15 17 19 21 23 | LC_ALL=C sort)" "$(ids out.initech)"

# --- a reload (SIGHUP) keeps them too, and what comes meanwhile arrives
es_log "reload"
kill -HUP "$ES_DAEMON_PID"
es_wait_log "reloading: starting again in place" 30
events "$SINGLE" initech 25 2 # produced while the daemon starts again
for _ in $(seq 1 300); do
    [ "$(grep -c "subscription restored id=$SID" "$ES_DAEMON_LOG")" -ge 2 ] && break
    sleep 0.1
done
es_eq "a reload restores the subscription in the new process" 2 \
    "$(grep -c "subscription restored id=$SID" "$ES_DAEMON_LOG")"
wait_count out.initech 13 || true
sleep 1
es_eq "a reload: the subscription gets what came meanwhile" \
    "$(printf 'initech-%s\n' 1 3 5 7 9 11 13 15 17 19 21 23 25 | LC_ALL=C sort)" "$(ids out.initech)"
es_eq "a reload: nothing is delivered twice" 13 "$(es_consume_all out.initech "$ES_TMP/dup.txt"; es_count "$ES_TMP/dup.txt")"
api DELETE "/v1/subscriptions/$SID" >/dev/null
es_check "inline filter files are removed" bash -c "[ -z \"\$(ls '$ES_TMP/state/subscriptions/' 2>/dev/null)\" ]"
es_check "the tenant's group is left" es_wait_log "consumer left group=eventstreamd.initech" 20

# --- the isolation property over random tenants and subscriptions
es_log "the isolation property"
SEED=${SUBS_SEED:-$RANDOM}
python3 "$SRC_DIR/tests/e2e/subs_property.py" "$URL" "$TOKEN" "$BOOTSTRAP" "$SEED" \
    "$ES_TMP/prop.json" | tee "$ES_TMP/prop.out" | grep -v '^PASS' || true
es_check "isolation property (seed $SEED)" grep -q "^property: .* 0 failed" "$ES_TMP/prop.out"
curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" >"$ES_TMP/metrics.txt"
es_check "one group per tenant for single-tenant topics, the daemon's for the rest" \
    python3 - "$ES_TMP/prop.json" "$ES_TMP/metrics.txt" <<'PY'
import json, re, sys
subs = json.load(open(sys.argv[1]))
lag = set(re.findall(r'^es_consumer_lag\{group="([^"]*)",topic="([^"]*)"',
                     open(sys.argv[2]).read(), re.M))
want = set()
for s in subs:
    for t in s["topics"]:
        want.add(("eventstreamd." + s["tenant"] if t.startswith("prop.s")
                  else "eventstreamd", t))
got = {(g, t) for g, t in lag if t.startswith("prop.")}
assert got == want, (sorted(got ^ want))[:10]
PY
es_eq "es_subscriptions{status=active} counts them" \
    "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$ES_TMP/prop.json")" \
    "$(sed -n 's/^es_subscriptions{status="active"} //p' "$ES_TMP/metrics.txt")"
es_stop_daemon TERM
es_check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$ES_TMP'/daemon*.log"
es_finish
