#!/usr/bin/env bash
# End-to-end test of the Lua filter through the daemon: drop, modify,
# redact, route, multi-event outputs, script errors and a runaway loop
# (dead-lettered, the daemon keeps going), the sandbox, and reload on
# change with the keep-old-on-error rule.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TOPIC=eventzr.marketplace.order.created.v1
DLQ=eventstream.dlq
OUT=$ES_TMP/out.jsonl
ROUTED=$ES_TMP/routed.jsonl
SCRIPT=$ES_TMP/filter.lua

# The script's behaviour is chosen per event by data.case.
write_v1() {
    cat >"$SCRIPT" <<'EOF'
function filter(ev, topic, tenant)
  local c = ev.data and ev.data.case
  if c == "drop" then return "drop" end
  if c == "modify" then
    ev.data.seenBy = "lua"; ev.data.topic = topic; ev.data.tenant = tenant
    return ev
  end
  if c == "redact" then
    es.redact(ev, { "data.email", "data.buyer.phone" })
    es.remove(ev, "data.buyer.name")
    return ev
  end
  if c == "route" then return "keep", "routed" end
  if c == "multi" then
    local b = es.copy(ev); b.id = ev.id .. "-copy"
    return { ev, { event = b, route = "routed" } }
  end
  if c == "boom" then error("boom for " .. ev.id) end
  if c == "loop" then while true do end end
  if c == "io" then return io.open("/etc/passwd") end
  if c == "exec" then return os.execute("touch /tmp/lua-e2e-pwned") end
  if c == "require" then return require("io") end
  if c == "version" then ev.data.v = 1; return ev end
  if c == "nul" then ev.data.s = "a\0b"; return ev end
  return "keep"
end
EOF
}
write_v1

ev() { # ev ID CASE [extra data members]
    printf '{"specversion":"1.0","id":"%s","source":"marketplace-svc",' "$1"
    printf '"type":"%s","tenantid":"t1","data":{"case":"%s"%s}}\n' \
        "$TOPIC" "$2" "${3:-}"
}

es_start_broker
CONFIG=$(es_config lua "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"group_id\": \"lua-e2e\",
            \"properties\": {\"session.timeout.ms\": \"6000\",
                             \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state\",
  \"dead_letter_topic\": \"$DLQ\",
  \"pipeline\": {\"filter_thread\": true},
  \"log\": {\"level\": \"info\", \"format\": \"logfmt\"},
  \"instances\": {
    \"out\":    {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}},
    \"routed\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ROUTED\"}},
    \"bin\":    {\"plugin\": \"kafka\", \"config\": {\"brokers\": \"$BOOTSTRAP\",
                 \"topic\": \"lua.e2e.bin\", \"content_mode\": \"binary\"}},
    \"f\":      {\"plugin\": \"lua\", \"config\": {\"script\": \"$SCRIPT\",
                 \"reload_check_ms\": 100}}
  },
  \"routes\": [
    {\"name\": \"main\", \"topics\": [\"$TOPIC\"], \"filters\": [\"f\"],
     \"tenant\": [\"data.buyer.id\", \"tenantid\"],
     \"destinations\": [\"out\", \"bin\"]},
    {\"name\": \"routed\", \"topics\": [\"lua.e2e.unused\"],
     \"destinations\": [\"routed\"]}
  ]
}")

# A script that does not load is a config error naming file and line.
BAD=$ES_TMP/bad.lua
printf 'function filter(ev)\n  return "keep"\nend end\n' >"$BAD"
BAD_CONFIG=$ES_TMP/bad.json
sed "s|\"script\": \"$SCRIPT\"|\"script\": \"$BAD\"|" "$CONFIG" >"$BAD_CONFIG"
set +e
BAD_OUT=$("$ES_BIN" -c "$BAD_CONFIG" 2>&1 </dev/null)
BAD_RC=$?
set -e
es_check "bad script refused at startup" [ "$BAD_RC" -ne 0 ]
es_check "load error names file and line" \
    grep -q "$BAD:3:" <<<"$BAD_OUT"

es_start_daemon "$CONFIG"
# "consumer joined" comes before the consumer has looked up the latest
# offsets; records produced in between would be skipped.
sleep 2

{
    ev e-keep keep
    ev e-drop drop
    ev e-modify modify
    ev e-redact redact ',"email":"a@b.c","buyer":{"name":"Ada","phone":"+1","id":7}'
    ev e-route route
    ev e-multi multi
    ev e-boom boom
    ev e-loop loop
    ev e-io io
    ev e-exec exec
    ev e-require require
    ev e-nul nul
    ev e-after after ',"big":9007199254740993,"f":1.0,"empty":[],"obj":{},"n":null'
} >"$ES_TMP/batch1"
es_produce "$TOPIC" "$ES_TMP/batch1"

# main gets keep, modify, redact, multi (original) and after: 5 lines;
# routed gets route and the multi copy: 2 lines.
es_wait_lines "$OUT" 5 60 || true
es_wait_lines "$ROUTED" 2 30 || true
es_eq "main route got 5 events" 5 "$(es_count "$OUT")"
es_eq "routed route got 2 events" 2 "$(es_count "$ROUTED")"
ids() { jq -r .id "$1" | sort | tr '\n' ' '; }
es_eq "main ids" "e-after e-keep e-modify e-multi e-redact " "$(ids "$OUT")"
es_eq "routed ids" "e-multi-copy e-route " "$(ids "$ROUTED")"

line() { grep "\"id\":\"$1\"" "$OUT"; }
es_eq "keep is byte-identical" "$(ev e-keep keep)" "$(line e-keep)"
es_eq "modify adds fields in order" \
    '{"case":"modify","seenBy":"lua","tenant":"t1","topic":"'"$TOPIC"'"}' \
    "$(line e-modify | jq -c .data)"
es_eq "redact and remove" \
    '{"case":"redact","email":"[REDACTED]","buyer":{"phone":"[REDACTED]","id":7}}' \
    "$(line e-redact | jq -c .data)"
# The kafka sink reads the tree (ce_ headers in binary mode), so the host
# builds a rewritten event's whole tree for it; the route's tenant path
# into data (the record key) reads it too.
es_consume lua.e2e.bin 5 "$ES_TMP/bin" "$BOOTSTRAP" '%k|%h|%s\n'
es_eq "tree-reading sink gets the rewritten event" \
    '7|ce_specversion=1.0,ce_id=e-redact,ce_source=marketplace-svc,ce_type='"$TOPIC"',ce_tenantid=t1|{"case":"redact","email":"[REDACTED]","buyer":{"phone":"[REDACTED]","id":7}}' \
    "$(grep '|ce_specversion=1.0,ce_id=e-redact,' "$ES_TMP/bin")"
es_eq "tenant from data, else tenantid" "7 t1 t1 t1 t1 " \
    "$(cut -d'|' -f1 "$ES_TMP/bin" | sort | tr '\n' ' ')"
# Raw text comparison: jq would round the big integer.
es_eq "after: unchanged" "$(ev e-after after ',"big":9007199254740993,"f":1.0,"empty":[],"obj":{},"n":null')" \
    "$(line e-after)"

# Errors, the runaway loop and the sandbox escapes are dead-lettered with
# the reason; nothing was executed outside the sandbox.
es_consume "$DLQ" 6 "$ES_TMP/dlq" "$BOOTSTRAP" '%k|%h|%s\n'
es_eq "6 events dead-lettered" 6 "$(es_count "$ES_TMP/dlq")"
reason() { grep "\"id\":\"$1\"" "$ES_TMP/dlq" | grep -o 'es_reason=[^,|]*' || true; }
es_check "error reason names script line" \
    grep -q "filter.lua:[0-9]*: boom for e-boom" <<<"$(reason e-boom)"
es_check "runaway stopped by instruction limit" \
    grep -q "instruction limit" <<<"$(reason e-loop)"
es_check "io is not reachable" grep -q "global 'io'" <<<"$(reason e-io)"
es_check "os.execute is not reachable" \
    grep -q "field 'execute'" <<<"$(reason e-exec)"
es_check "require is not reachable" \
    grep -q "global 'require'" <<<"$(reason e-require)"
es_check "os.execute did not run" [ ! -e /tmp/lua-e2e-pwned ]
es_check "a NUL written by a script is refused, not cut" \
    grep -q 'filter output: unsupported JSON at byte [0-9]*: \\u0000' <<<"$(reason e-nul)"

# The filter runs on its own thread here (pipeline.filter_thread; the
# other tests run filters inline): a partition's events still come out all
# and in their order, kept and replaced ones alike.
for i in $(seq -w 1 1000); do
    [ $((10#$i % 2)) -eq 0 ] && c=keep || c=modify
    printf 'k\t%s\n' "$(ev "e-seq-$i" "$c")"
done >"$ES_TMP/batch-seq"
es_produce "$TOPIC" "$ES_TMP/batch-seq"
es_wait_lines "$OUT" 1005 60 || true
es_eq "filter thread keeps the partition's order" \
    "$(seq -w 1 1000 | sed 's/^/e-seq-/')" \
    "$(jq -r .id "$OUT" | grep '^e-seq-')"

# Reload: v2 marks events; then a broken v3 is refused and v2 keeps going.
sed -i 's/ev.data.v = 1/ev.data.v = 2/' "$SCRIPT"
es_wait_log 'reloaded' 10
ev e-v2 version >"$ES_TMP/batch2"
es_produce "$TOPIC" "$ES_TMP/batch2"
es_wait_lines "$OUT" 1006 30 || true
es_eq "reloaded script runs" 2 "$(line e-v2 | jq .data.v)"

printf 'function filter(ev)\n  return "keep"\n' >"$SCRIPT"
es_wait_log 'reload failed' 10
es_check "reload failure names the line" \
    grep -q "filter.lua:3:" "$ES_DAEMON_LOG"
ev e-v3 version >"$ES_TMP/batch3"
es_produce "$TOPIC" "$ES_TMP/batch3"
es_wait_lines "$OUT" 1007 30 || true
es_eq "old version kept after failed reload" 2 "$(line e-v3 | jq .data.v)"
es_check "daemon still running" kill -0 "$ES_DAEMON_PID"

es_stop_daemon
es_finish
