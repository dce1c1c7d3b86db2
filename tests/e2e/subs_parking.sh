#!/usr/bin/env bash
# Parking for subscriptions (docs/parking.md, issue 8): two tenants'
# subscriptions on one multi-tenant topic, one with an https endpoint (the
# TLS receiver in tests/peers/https) answering 503, the other a kafka sink.
# With max_inflight 40 the healthy tenant would stall behind the failing
# one's retries; with parking it gets every event promptly while the other
# is parked. A restart while parked starts it parked again; after recovery
# the failing endpoint gets every event exactly once, in order. Also: the
# subscriptions.park key and a subscription's own "park" are validated.
. "$(dirname "$0")/lib.sh"

TOPIC=sp.orders # onboarded, tenancy multi
PEER="$SRC_DIR/tests/peers/https"
es_start_broker -t "$TOPIC:2" -t out.good:1 -t eventstream.dlq:1
PORT=$(es_free_port)
TOKEN=tok-$RANDOM$RANDOM
URL=http://127.0.0.1:$PORT
TOPICS="$ES_TMP/topics"
mkdir -p "$TOPICS/test-svc/$TOPIC"
printf '{"topic": "%s", "team": "test-svc", "tenancy": "multi", "format": "json", "tenant": ["tenantid"]}\n' \
    "$TOPIC" >"$TOPICS/test-svc/$TOPIC/topic-details.json"

sh "$PEER/mkcerts.sh" "$ES_TMP/certs" >/dev/null 2>&1
python3 "$PEER/server.py" "$ES_TMP/certs" >"$ES_TMP/server.out" 2>"$ES_TMP/server.err" &
ES_PIDS+=("$!")
for _ in $(seq 1 100); do
    grep -q port "$ES_TMP/server.out" 2>/dev/null && break
    sleep 0.05
done
HPORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$ES_TMP/server.out")
CA="$ES_TMP/certs/ca.pem"
ctl() { curl -sf --cacert "$CA" -X "$1" "https://127.0.0.1:$HPORT$2" ${3:+-d "$3"}; }
# hpy EXPR: EXPR over the receiver's state s
hpy() { ctl GET /_ctl/state | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
fail_all() { # the receiver answers 503 to the next 50,000 deliveries
    python3 -c 'import json; print(json.dumps({"reset": True, "script": [{"status": 503}] * 50000}))' >"$ES_TMP/fail.json"
    curl -sf --cacert "$CA" -X POST --data-binary @"$ES_TMP/fail.json" "https://127.0.0.1:$HPORT/_ctl/config"
}

config() { # NAME SUBSCRIPTIONS-OBJECT
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"topics_dir\": \"$TOPICS\",
  \"retry\": {\"initial_backoff_ms\": 50, \"max_backoff_ms\": 400, \"max_attempts\": 0},
  \"pipeline\": {\"commit_interval_ms\": 200, \"max_inflight\": 40, \"batch_size\": 10,
     \"shutdown_timeout_ms\": 2000},
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"subscriptions\": $2,
  \"instances\": {\"all\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ES_TMP/all.jsonl\"}}},
  \"routes\": [{\"name\": \"all\", \"topics\": [\"$TOPIC\"], \"destinations\": [\"all\"]}]
}"
}
api() { # METHOD PATH [BODY]: the body on stdout, the status in $ES_TMP/code
    curl -s -o "$ES_TMP/body" -w '%{http_code}' -X "$1" \
        -H "Authorization: Bearer $TOKEN" ${3:+-d "$3"} "$URL$2" >"$ES_TMP/code"
    cat "$ES_TMP/body"
}
code() { cat "$ES_TMP/code"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
events() { # TENANT FIRST COUNT: appended to $ES_TMP/ev.txt, keyed by tenant
    local i
    for i in $(seq "$2" $(($2 + $3 - 1))); do
        printf '%s\t{"specversion":"1.0","id":"%s-%04d","source":"e2e","type":"t","tenantid":"%s","data":{"n":%d}}\n' \
            "$1" "$1" "$i" "$1" "$i"
    done >>"$ES_TMP/ev.txt"
}
good_count() {
    es_consume_all out.good "$ES_TMP/good.txt"
    es_count "$ES_TMP/good.txt"
}
wait_good() { # N SECONDS
    local i
    for i in $(seq 1 $(($2 * 2))); do
        [ "$(good_count)" -ge "$1" ] && return 0
        sleep 0.5
    done
    return 1
}
HOOK="{\"type\": \"https\", \"config\": {\"url\": \"https://localhost:$HPORT/hook\", \"tls\": {\"ca_file\": \"$CA\"}}}"
GOOD="{\"type\": \"kafka\", \"config\": {\"brokers\": \"$BOOTSTRAP\", \"topic\": \"out.good\"}}"

# --- config: subscriptions.park is checked, errors name the key
es_log "config"
msg=$("$ES_BIN" --check-config "$(config c1 '{"park": {"topic": "x"}}')" 2>&1 || true)
es_check "subscriptions.park.topic is per subscription" grep -q 'c1.json: subscriptions.park.topic: is per subscription' <<<"$msg"
msg=$("$ES_BIN" --check-config "$(config c2 '{"park": {"afterms": 1}}')" 2>&1 || true)
es_check "subscriptions.park: unknown key named" grep -q 'c2.json: subscriptions.park.afterms: unknown key' <<<"$msg"
msg=$("$ES_BIN" --check-config "$(config c3 '{"parking": {}}')" 2>&1 || true)
es_check "subscriptions: unknown key named" grep -q 'c3.json: subscriptions.parking: unknown key' <<<"$msg"
CONFIG=$(config sp '{"park": {"after_attempts": 3, "after_ms": 2000}}')
es_check "subscriptions.park config checks OK" "$ES_BIN" --check-config "$CONFIG"

fail_all
es_start_daemon "$CONFIG"

# --- the subscription's own park object
es_log "the subscription's park object"
msg=$(api POST /v1/subscriptions "{\"id\": \"bad-hook\", \"tenant\": \"initech\", \"topics\": [\"$TOPIC\"], \"destination\": $HOOK, \"park\": {\"afterms\": 1}}")
es_eq "park: unknown key, 400 naming it" '400 {"error":"park.afterms: unknown key"}' "$(code) $msg"
msg=$(api POST /v1/subscriptions "{\"id\": \"bad-hook\", \"tenant\": \"initech\", \"topics\": [\"$TOPIC\"], \"destination\": $HOOK, \"park\": {\"after_ms\": 0, \"after_attempts\": 0}}")
es_eq "park: both thresholds 0, 400" 400 "$(code)"
es_check "... naming the key" grep -q '"error":"park: after_ms and after_attempts are both 0' <<<"$msg"
msg=$(api POST /v1/subscriptions "{\"id\": \"bad-hook\", \"tenant\": \"initech\", \"topics\": [\"$TOPIC\"], \"destination\": $HOOK, \"park\": {\"topic\": \"eventstream.park.good-out\"}}")
es_eq "park: a topic of its choosing (another's park topic), 400" 400 "$(code)"
es_check "... naming the key" grep -q '"error":"park.topic: is set by the daemon' <<<"$msg"
msg=$(api POST /v1/subscriptions "{\"id\": \"bad-hook\", \"tenant\": \"initech\", \"topics\": [\"$TOPIC\"], \"destination\": $HOOK, \"park\": {\"group\": \"eventstreamd\"}}")
es_eq "park: a group of its choosing, 400 naming it" 400 "$(code)"
es_check "... naming the key" grep -q '"error":"park.group: is set by the daemon' <<<"$msg"
B=$(api POST /v1/subscriptions "{\"id\": \"bad-hook\", \"tenant\": \"initech\", \"topics\": [\"$TOPIC\"], \"destination\": $HOOK, \"park\": {\"after_attempts\": 2}}")
es_eq "create with park: 201" 201 "$(code)"
es_eq "GET shows the park object" '{"after_attempts": 2}' "$(api GET /v1/subscriptions/bad-hook | jget 'json.dumps(d["park"])')"
api POST /v1/subscriptions "{\"id\": \"good-out\", \"tenant\": \"acme\", \"topics\": [\"$TOPIC\"], \"destination\": $GOOD}" >/dev/null
es_eq "second tenant's subscription: 201" 201 "$(code)"
es_eq "no park key when not given" False "$(api GET /v1/subscriptions/good-out | jget '"park" in d')"
es_check "drainers joined their groups" es_wait_log "park drainer assigned group=eventstreamd.park.good-out" 30
es_check "... with the default group name" grep -q "park drainer assigned group=eventstreamd.park.bad-hook" "$ES_DAEMON_LOG"
es_eq "es_parked is 0 for both" "0 0" "$(es_metric 'es_parked{destination="bad-hook"}') $(es_metric 'es_parked{destination="good-out"}')"

# --- the failing endpoint does not hold the healthy tenant back
es_log "initech's endpoint fails; acme's keeps receiving"
: >"$ES_TMP/ev.txt"
for k in $(seq 0 9); do # interleaved, 150 of each
    events initech $((k * 15 + 1)) 15
    events acme $((k * 15 + 1)) 15
done
t0=$(date +%s)
es_produce "$TOPIC" "$ES_TMP/ev.txt"
wait_good 150 20 || true
es_eq "healthy tenant gets all 150 while the other fails" 150 "$(good_count)"
es_check "... promptly (under 15 s)" test $(($(date +%s) - t0)) -lt 15
es_check "failing subscription is parked" es_wait_log 'destination parked: an event failed 2 time' 20
es_eq "es_parked{destination=\"bad-hook\"} is 1" 1 "$(es_metric 'es_parked{destination="bad-hook"}')"
es_eq "the healthy one is not parked" 0 "$(es_metric 'es_parked{destination="good-out"}')"
es_check "all 150 of the failing tenant's are parked" es_wait_metric 'es_parked_total{destination="bad-hook"}' 150 20
es_consume eventstream.park.bad-hook 150 "$ES_TMP/park.txt"
es_eq "150 events in eventstream.park.bad-hook" 150 "$(es_count "$ES_TMP/park.txt")"
es_eq "nothing accepted by the failing endpoint" 0 "$(hpy 'len(s["accepted"])')"

# --- restart while parked (and still failing): starts parked
es_log "restart while parked"
sleep 1 # past the commit interval
es_stop_daemon TERM || true
es_start_daemon "$CONFIG"
es_check "restored subscription starts parked" es_wait_log 'destination starts parked' 20
: >"$ES_TMP/ev.txt"
events initech 151 10
events acme 151 10
es_produce "$TOPIC" "$ES_TMP/ev.txt"
wait_good 160 20 || true
es_eq "healthy tenant: 160 after restart, none twice" "160 160" "$(good_count) $(python3 -c 'import json,sys; print(len({json.loads(l)["id"] for l in open(sys.argv[1])}))' "$ES_TMP/good.txt")"
es_check "new events queue behind the parked ones" es_wait_metric 'es_parked_total{destination="bad-hook"}' 10 20

# --- recovery: every event once, in order, then direct again
es_log "recovery"
ctl POST /_ctl/config '{"reset": true}'
for _ in $(seq 1 120); do
    [ "$(hpy 'len(s["accepted"])')" -ge 160 ] && break
    sleep 0.5
done
es_eq "failing endpoint gets all 160 after recovery" 160 "$(hpy 'len(s["accepted"])')"
es_eq "each exactly once" 1 "$(hpy 'max(s["accepted"].values())')"
es_eq "in order" "$(printf 'initech-%04d\n' $(seq 1 160) | tr '\n' ' ')" \
    "$(hpy '" ".join(i for r in s["requests"] if r["status"] == 200 for i in r["ids"]) + " "')"
es_check "unparked" es_wait_log 'destination unparked: eventstream.park.bad-hook is drained' 20
es_eq "es_parked back to 0" 0 "$(es_metric 'es_parked{destination="bad-hook"}')"
: >"$ES_TMP/ev.txt"
events initech 161 5
es_produce "$TOPIC" "$ES_TMP/ev.txt"
for _ in $(seq 1 40); do
    [ "$(hpy 'len(s["accepted"])')" -ge 165 ] && break
    sleep 0.5
done
es_eq "then direct again" 165 "$(hpy 'len(s["accepted"])')"
es_eq "... nothing more parked" 10 "$(es_metric 'es_parked_total{destination="bad-hook"}')"

# --- delete while parked: the park topic keeps the events; a subscription
# re-created with the same id replays them first
es_log "delete while parked, re-create"
fail_all
: >"$ES_TMP/ev.txt"
events initech 166 5
es_produce "$TOPIC" "$ES_TMP/ev.txt"
es_check "parked again" es_wait_metric 'es_parked{destination="bad-hook"}' 1 20
es_check "the 5 are parked" es_wait_metric 'es_parked_total{destination="bad-hook"}' 15 20
api DELETE /v1/subscriptions/bad-hook >/dev/null
es_eq "delete: 204" 204 "$(code)"
es_check "gauge cleared once released" es_wait_metric 'es_parked{destination="bad-hook"}' 0 20
ctl POST /_ctl/config '{"reset": true}'
api POST /v1/subscriptions "{\"id\": \"bad-hook\", \"tenant\": \"initech\", \"topics\": [\"$TOPIC\"], \"destination\": $HOOK}" >/dev/null
es_eq "re-create: 201" 201 "$(code)"
for _ in $(seq 1 40); do
    [ "$(hpy 'len(s["accepted"])')" -ge 5 ] && break
    sleep 0.5
done
es_eq "re-created subscription replays what was parked" \
    "initech-0166 initech-0167 initech-0168 initech-0169 initech-0170 " \
    "$(hpy '" ".join(i for r in s["requests"] if r["status"] == 200 for i in r["ids"]) + " "')"

es_stop_daemon TERM
es_check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$ES_TMP'/daemon*.log"
es_finish
