#!/usr/bin/env bash
# The filter stage (pipeline.filter_thread) through the real daemon: a stop
# while thousands of events wait in the stage loses none of them (they are
# let go uncommitted and redelivered after restart), every delivered event
# went through the filter, and a graceful stop with time to drain delivers
# each event once.
. "$(dirname "$0")/lib.sh"

TOPIC=eventzr.marketplace.order.created.v1
OUT="$ES_TMP/out.jsonl"
GEN="$SRC_DIR/tests/e2e/gen_events.py"
SCRIPT="$ES_TMP/slow.lua"
# Slow on purpose, so the consuming thread runs far ahead of the stage.
cat >"$SCRIPT" <<'EOF'
function filter(ev)
  local x = 0
  for i = 1, 3000 do x = x + i end
  ev.data.stage = x
  return ev
end
EOF

es_start_broker -t "$TOPIC:4"
config() { # config NAME SHUTDOWN_TIMEOUT_MS
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state\",
  \"pipeline\": {\"filter_thread\": true, \"shutdown_timeout_ms\": $2},
  \"instances\": {
    \"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}},
    \"slow\": {\"plugin\": \"lua\", \"config\": {\"script\": \"$SCRIPT\",
               \"reload_check_ms\": 0}}},
  \"routes\": [{\"name\": \"orders\", \"topics\": [\"$TOPIC\"],
                \"filters\": [\"slow\"], \"destinations\": [\"out\"]}]
}"
}
ABRUPT=$(config abrupt 0)
GRACEFUL=$(config graceful 30000)
# Reads the sink's file while the daemon may still be writing to it: a
# last line not yet complete is skipped. Prints the distinct ids and how
# many events lack the filter's mark.
scan_out() {
    python3 -c '
import json,sys
ids, unfiltered = set(), 0
for line in open(sys.argv[1]):
    try:
        ev = json.loads(line)
    except ValueError:
        continue
    ids.add(ev["id"])
    unfiltered += ev["data"].get("stage") != 4501500
print(len(ids), unfiltered)' "$OUT"
}
distinct() { scan_out | cut -d" " -f1; }

# --- stop with no time to drain while the stage holds a backlog
es_start_daemon "$ABRUPT"
python3 "$GEN" 20000 --keyed >"$ES_TMP/batch1.txt"
es_produce "$TOPIC" "$ES_TMP/batch1.txt"
es_wait_lines "$OUT" 500 60 || true
rc=0
es_stop_daemon TERM || rc=$?
es_eq "SIGTERM exits 0 with events in the stage" 0 "$rc"
before=$(es_count "$OUT")
es_check "stopped before all were filtered ($before of 20000)" \
    [ "$before" -lt 20000 ]
es_check "the stage's leftovers are named in the log" \
    grep -q 'event(s) left in the filter stage at exit' "$ES_DAEMON_LOG"

# --- restart: every event arrives, each one filtered
es_start_daemon "$GRACEFUL"
for i in $(seq 1 240); do
    [ "$(distinct)" -ge 20000 ] && break
    sleep 0.5
done
es_eq "restart: all 20,000 ids present" 20000 "$(distinct)"
es_eq "every delivered event went through the filter" 0 \
    "$(scan_out | cut -d" " -f2)"

# --- graceful stop mid-stream with time to drain: nothing twice
lines=$(es_count "$OUT")
python3 "$GEN" 5000 --start 20000 --keyed >"$ES_TMP/batch2.txt"
es_produce "$TOPIC" "$ES_TMP/batch2.txt"
es_wait_lines "$OUT" $((lines + 200)) 60 || true
rc=0
es_stop_daemon TERM || rc=$?
es_eq "graceful SIGTERM exits 0" 0 "$rc"
es_start_daemon "$GRACEFUL"
es_wait_lines "$OUT" $((lines + 5000)) 120 || true
sleep 1
es_eq "graceful stop: the 5,000 new events exactly once" 5000 \
    "$(($(es_count "$OUT") - lines))"
es_stop_daemon TERM || true
es_check "no sanitizer report" \
    bash -c "! grep -q 'runtime error\|Sanitizer' '$ES_TMP'/daemon*.log"

es_finish
