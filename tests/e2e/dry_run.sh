#!/usr/bin/env bash
# eventstreamd --dry-run TOPIC (docs/lua-filters.md#trying-a-filter): each
# line of standard input is a topic test, answered with the API's report;
# a route's filter verdicts (keep, replace, drop, split, reroute), an
# onboarded topic's tenant and PII, a real delivery to a test endpoint,
# bad lines answered and counted without stopping the run, exit status;
# the config's brokers are never contacted and its state_dir never
# touched, nor are sinks it does not deliver to built; a topic's records
# piped from kcat; SIGTERM while it reads.
. "$(dirname "$0")/lib.sh"

TOPIC=dr.orders
TOPICS="$ES_TMP/service-teams-topics"
mkdir -p "$TOPICS/test-svc/orders" "$ES_TMP/tmp"
cat >"$TOPICS/test-svc/orders/topic-details.json" <<EOF
{"topic": "$TOPIC", "team": "test-svc", "tenancy": "multi", "format": "json",
 "tenant": ["data.customer.org"], "pii": ["data.email"],
 "description": "dry-run orders"}
EOF
cat >"$ES_TMP/f.lua" <<'EOF'
function filter(ev, topic, tenant, key)
  if ev.type == "spam" then return "drop" end
  if ev.type == "dispute" then return "keep", "disputes" end
  if ev.type == "split" then
    local copy = es.copy(ev)
    copy.id = ev.id .. ":copy"
    return { ev, { event = copy, route = "disputes" } }
  end
  if ev.type == "loop" then while true do end end
  if ev.type == "keyed" then ev.keyseen = key; return ev end
  ev.filtered = tenant
  return ev
end
EOF

# What stands for the config's Kafka cluster: a listener that records every
# connection. The dry run must not make one (its consumers would join the
# live group and rebalance it).
KPORT=$(es_free_port)
python3 - "$KPORT" "$ES_TMP/kafka-connections" <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
open(sys.argv[2], "w").close()
while True:
    c, _ = s.accept()
    with open(sys.argv[2], "a") as f:
        f.write("connection\n")
    c.close()
PY
ES_PIDS+=($!)
for _ in $(seq 1 100); do [ -f "$ES_TMP/kafka-connections" ] && break; sleep 0.05; done

CONFIG=$(es_config dry "{
  \"kafka\": {\"brokers\": \"127.0.0.1:$KPORT\", \"group_id\": \"live-group\",
    \"properties\": {\"security.protocol\": \"SASL_PLAINTEXT\",
      \"sasl.mechanism\": \"PLAIN\", \"sasl.username\": \"u\", \"sasl.password\": \"p\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"topics_dir\": \"$TOPICS\",
  \"instances\": {
    \"f\": {\"plugin\": \"lua\", \"config\": {\"script\": \"$ES_TMP/f.lua\",
      \"instruction_limit\": 100000}},
    \"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ES_TMP/servers-only/out.jsonl\"}},
    \"disputes\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ES_TMP/disputes.jsonl\"}},
    \"copy\": {\"plugin\": \"kafka\", \"config\": {\"brokers\": \"127.0.0.1:$KPORT\",
      \"topic\": \"disputes\"}},
    \"probe\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ES_TMP/probe.jsonl\"},
      \"test_endpoint\": true}},
  \"routes\": [
    {\"name\": \"orders\", \"topics\": [\"$TOPIC\"], \"filters\": [\"f\"],
     \"destinations\": [\"out\"]},
    {\"name\": \"disputes\", \"topics\": [], \"destinations\": [\"disputes\", \"copy\"]}]
}")
# The sinks and handlers a dry run does not deliver to are not built: the
# file sink's directory exists only on the servers, the kafka sink's
# cluster is the listener above.
es_check "here --check-config refuses the config (a file sink's directory is missing)" \
    bash -c "'$ES_BIN' --check-config '$CONFIG' 2>&1 | grep -q 'instances.out.config: path: cannot open'"

ev() { # ID TYPE ORG
    printf '{"specversion":"1.0","id":"%s","source":"shop","type":"%s","data":{"customer":{"org":"%s"},"email":"x@y.z","n":1}}\n' "$@"
}
{
    ev k1 order acme                                        # 1: replace
    ev k2 spam acme                                         # 2: drop
    echo                                                    # 3: blank, skipped
    ev k3 dispute acme                                      # 4: rerouted
    ev k4 split globex                                      # 5: split
    echo '{"specversion":"1.0","id":"k5","source":"shop"}'  # 6: does not decode
    echo '{"bad'                                            # 7: not JSON
    ev k6 loop acme                                         # 8: runaway script
    printf '{"value":%s,"key":"the-key","headers":{"h":"v"}}\n' "$(ev k7 keyed acme)" # 9
} >"$ES_TMP/in.jsonl"

set +e
TMPDIR="$ES_TMP/tmp" "$ES_BIN" -c "$CONFIG" --dry-run "$TOPIC" \
    <"$ES_TMP/in.jsonl" >"$ES_TMP/reports.jsonl" 2>"$ES_TMP/err.log"
rc=$?
set -e
es_eq "a run with lines that fail exits 1" 1 "$rc"
es_eq "one report per non-blank line" 8 "$(es_count "$ES_TMP/reports.jsonl")"
es_check "the reports are the API's, verdict by verdict" \
    python3 - "$ES_TMP/reports.jsonl" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
one = r[0]
assert one["topic"] == "dr.orders" and one["onboarded"]["team"] == "test-svc", one
assert one["tenant"] == "acme" and one["delivered"] is False, one
f = one["routes"][0]["filters"][0]
assert (f["filter"], f["verdict"], f["outputs"]) == ("f", "replace", 1), f
out = one["routes"][0]["outputs"][0]
assert out["event"]["filtered"] == "acme", out
assert "email" not in out["event"]["data"] and out["pii_stripped"] == ["data.email"], out
assert out["destinations"] == ["out"], out
assert one["decoded"]["data"]["email"] == "x@y.z", one   # the filter saw it
assert r[1]["routes"][0]["filters"][0]["verdict"] == "drop", r[1]
assert r[1]["routes"][0]["outputs"] == [], r[1]
re = r[2]["routes"][0]["outputs"]
assert [(o["route"], o["destinations"]) for o in re] == [("disputes", ["disputes", "copy"])], re
sp = r[3]["routes"][0]["outputs"]
assert [(o["event"]["id"], o["route"], o["tenant"]) for o in sp] == \
    [("k4", "orders", "globex"), ("k4:copy", "disputes", "globex")], sp
assert r[4]["decode_error"] == 'missing required attribute "type"', r[4]
assert r[5] == {"line": 7, "error": "request body is not valid JSON (at byte 2)"}, r[5]
lp = r[6]["routes"][0]["filters"][0]
assert lp["verdict"] == "fail" and "instruction limit" in lp["dead_letter"], lp
kd = r[7]["routes"][0]["outputs"][0]["event"]
assert kd["keyseen"] == "the-key", kd
PY
es_check "stderr names each failing line" bash -c "
    grep -q 'dry run: line 6: not decoded: missing required attribute' '$ES_TMP/err.log' &&
    grep -q 'dry run: line 7: request body is not valid JSON' '$ES_TMP/err.log' &&
    grep -q 'dry run: line 8: route orders: would be dead-lettered: lua instruction limit' '$ES_TMP/err.log' &&
    grep -q 'dry run: topic=$TOPIC tests=8 failed=3' '$ES_TMP/err.log'"
es_eq "the config's brokers and the kafka sink's are never contacted" 0 "$(es_count "$ES_TMP/kafka-connections")"
es_check "the config's state_dir is not created" test ! -e "$ES_TMP/state"
es_check "a sink not delivered to is not built: its missing directory is no error" \
    test ! -e "$ES_TMP/servers-only"
es_check "nor is its file created" test ! -e "$ES_TMP/disputes.jsonl"
es_check "the run's own state directory is removed" \
    bash -c "[ -z \"\$(ls -A '$ES_TMP/tmp')\" ]"
es_eq "nothing is delivered to the route's destinations" "0 0" \
    "$(es_count "$ES_TMP/servers-only/out.jsonl") $(es_count "$ES_TMP/disputes.jsonl")"

# A real delivery to the test endpoint, in the wrapped form.
# (and one the filter drops: nothing to deliver is no failure)
{
    printf '{"value":%s,"deliver_to":"probe"}\n' "$(ev d1 order acme)"
    printf '{"value":%s,"deliver_to":"probe"}\n' "$(ev d0 spam acme)"
} >"$ES_TMP/deliver.jsonl"
es_check "a good run exits 0" bash -c \
    "'$ES_BIN' -c '$CONFIG' --dry-run $TOPIC <'$ES_TMP/deliver.jsonl' >'$ES_TMP/d.json' 2>>'$ES_TMP/err.log'"
es_check "deliver_to really delivers the outputs, PII stripped" python3 - "$ES_TMP" <<'PY'
import json, sys
d = sys.argv[1]
rep, dropped = [json.loads(l) for l in open(d + "/d.json")]
assert dropped["delivery"]["events"] == 0, dropped
assert rep["delivered"] is True and rep["delivery"]["ok"] == 1, rep
got = [json.loads(l) for l in open(d + "/probe.jsonl")]
assert [(e["id"], e["filtered"], "email" in e["data"]) for e in got] == [("d1", "acme", False)], got
PY
printf '{"value":%s,"deliver_to":"out"}\n' "$(ev d2 order acme)" >"$ES_TMP/not-test.jsonl"
set +e
"$ES_BIN" -c "$CONFIG" --dry-run "$TOPIC" <"$ES_TMP/not-test.jsonl" >"$ES_TMP/nt.json" 2>>"$ES_TMP/err.log"
rc=$?
set -e
es_eq "deliver_to an instance that is not a test endpoint: exit 1" 1 "$rc"
es_check "and the line says why" grep -q '"line":1,"error":"deliver_to: instance \\"out\\" is not a test endpoint' "$ES_TMP/nt.json"

# A topic's real records, piped from kcat as lua-filters.md shows.
es_start_broker -t $TOPIC:1
{ ev s1 order acme; ev s2 spam acme; ev s3 order globex; } >"$ES_TMP/stream.jsonl"
es_produce $TOPIC "$ES_TMP/stream.jsonl"
set +e
timeout 30 kcat -C -b "$BOOTSTRAP" -t $TOPIC -o beginning -e -q |
    "$ES_BIN" -c "$CONFIG" --dry-run $TOPIC >"$ES_TMP/stream-reports.jsonl" 2>>"$ES_TMP/err.log"
rc=$?
set -e
es_eq "records piped from kcat: exit 0" 0 "$rc"
es_eq "each one's verdict" "s1:replace s2:drop s3:replace" "$(python3 -c '
import json, sys
print(" ".join("%s:%s" % (r["decoded"]["id"], r["routes"][0]["filters"][0]["verdict"])
               for r in map(json.loads, open(sys.argv[1]))))' "$ES_TMP/stream-reports.jsonl")"

# A reader that goes away (| head -1): the run stops and cleans up.
mkdir -p "$ES_TMP/tmp3"
for i in $(seq 1 3000); do ev "h$i" order acme; done >"$ES_TMP/many.jsonl"
set +e
TMPDIR="$ES_TMP/tmp3" "$ES_BIN" -c "$CONFIG" --dry-run $TOPIC <"$ES_TMP/many.jsonl" \
    2>"$ES_TMP/pipe.err" | head -1 >/dev/null
rc=${PIPESTATUS[0]}
set -e
es_eq "the reader goes away: exit 1, said so" "1 1" \
    "$rc $(grep -c 'dry run: cannot write the reports' "$ES_TMP/pipe.err")"
es_check "and its state directory removed" bash -c "[ -z \"\$(ls -A '$ES_TMP/tmp3')\" ]"

# SIGTERM while it waits for input: the run ends and cleans up.
mkdir -p "$ES_TMP/tmp2"
mkfifo "$ES_TMP/fifo"
TMPDIR="$ES_TMP/tmp2" "$ES_BIN" -c "$CONFIG" --dry-run "$TOPIC" <"$ES_TMP/fifo" \
    >/dev/null 2>"$ES_TMP/int.err" &
pid=$!
exec 3>"$ES_TMP/fifo"
ev w1 order acme >&3
for _ in $(seq 1 100); do grep -q "consumer started" "$ES_TMP/int.err" && break; sleep 0.05; done
sleep 0.3
es_check "its state directory exists while it runs" bash -c "[ -n \"\$(ls -A '$ES_TMP/tmp2')\" ]"
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
exec 3>&-
es_eq "SIGTERM while reading: exit 1" 1 "$rc"
es_check "logged as interrupted" grep -q "dry run: interrupted after 1 test(s)" "$ES_TMP/int.err"
es_check "and its state directory removed" bash -c "[ -z \"\$(ls -A '$ES_TMP/tmp2')\" ]"

# Usage and config errors.
set +e
"$ES_BIN" --dry-run "$TOPIC" </dev/null >/dev/null 2>"$ES_TMP/usage.err"
rc=$?
printf '{"kafka": {"brokers": "embedded"}, "routes": [], "pipline": {}}\n' >"$ES_TMP/bad.json"
"$ES_BIN" -c "$ES_TMP/bad.json" --dry-run "$TOPIC" </dev/null >/dev/null 2>"$ES_TMP/bad.err"
brc=$?
set -e
es_eq "--dry-run without -c: usage, exit 2" 2 "$rc"
es_check "the usage names --dry-run" grep -q -- "--dry-run TOPIC" "$ES_TMP/usage.err"
es_eq "a bad config: exit 1" 1 "$brc"
es_check "naming the file and the key" grep -q "bad.json: pipline: unknown key" "$ES_TMP/bad.err"
es_check "no sanitizer report" bash -c "! grep -l 'runtime error\|Sanitizer' '$ES_TMP/err.log' '$ES_TMP/int.err' '$ES_TMP/pipe.err'"
es_finish
