#!/usr/bin/env bash
# A consumer's errors. Commits the group refuses (an ACL, say) are retried
# at every commit interval and logged once per streak, not once per try.
# A consumer's fatal error ends it for good: with static membership
# (group.instance.id) another member with the same id fences it, and it
# can neither consume nor commit again. The daemon then stops, exit 1 with
# the reason, for the service manager to restart it (Restart=on-failure);
# nothing is lost: after the restart every event arrives. es-broker answers
# a heartbeat with FENCED_INSTANCE_ID (-c, SIGHUP).
. "$(dirname "$0")/lib.sh"

CONTROL="$ES_TMP/broker.control"
es_start_broker -t in:2 -t eventstream.dlq:1 -c "$CONTROL"
OUT="$ES_TMP/out.jsonl"
PORT=$(es_free_port)
URL="http://127.0.0.1:$PORT"
TOKEN=t-$RANDOM
CONFIG=$(es_config fenced "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"group.instance.id\": \"daemon-a\",
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"pipeline\": {\"commit_interval_ms\": 200},
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"instances\": {\"file\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"in\"], \"destinations\": [\"file\"]}]
}")
gen() { python3 "$SRC_DIR/tests/e2e/gen_events.py" "$1" --keyed --start "$2"; }

es_start_daemon "$CONFIG"
gen 100 0 >"$ES_TMP/a.txt"
es_produce in "$ES_TMP/a.txt"
es_wait_lines "$OUT" 100 30 || true
es_eq "static member: every event arrives" 100 "$(es_count "$OUT")"
sleep 1 # a commit interval or more: the 100 are committed

# --- five commits refused, while events come
es_broker_push "$BROKER_PID" "$BROKER_OUT" "$CONTROL" "OffsetCommit GROUP_AUTHORIZATION_FAILED 5"
for i in 1 2 3 4 5 6; do
    gen 10 $((100 * i)) >"$ES_TMP/c$i.txt"
    es_produce in "$ES_TMP/c$i.txt"
    sleep 0.5
done
es_wait_lines "$OUT" 160 30 || true
es_wait_log 'commits succeed again' 20 || true
es_eq "commits refused: every event still arrives" 160 "$(es_count "$OUT")"
es_eq "commits refused: the streak is logged once" 1 \
    "$(grep -c 'commit group=eventstreamd failed: Broker: Group authorization failed; retried at every commit interval' "$ES_DAEMON_LOG")"
es_eq "commits refused: ... and its end, with the count" 1 \
    "$(grep -c 'commit group=eventstreamd: commits succeed again after 5 failure(s)' "$ES_DAEMON_LOG")"
es_eq "commits refused: es_commit_failures_total counts them" 5 \
    "$(es_metric 'es_commit_failures_total{group="eventstreamd"}')"
sleep 1 # the commits after the streak

# --- fenced
es_broker_push "$BROKER_PID" "$BROKER_OUT" "$CONTROL" "Heartbeat FENCED_INSTANCE_ID 1"
for i in $(seq 1 150); do kill -0 "$ES_DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
es_check "fenced: the daemon stops within 15 s" bash -c "! kill -0 $ES_DAEMON_PID 2>/dev/null"
rc=0
es_stop_daemon KILL || rc=$? # only reaps it, when it stopped
es_eq "fenced: ... with exit 1" 1 "$rc"
es_eq "fenced: the reason is logged once, at level error" 1 \
    "$(grep -c 'level=error.*consumer group=eventstreamd: fatal error: .*fenced by other consumer with same group.instance.id; stopping (exit 1)' "$ES_DAEMON_LOG")"
es_eq "fenced: no other line repeats it" 1 "$(grep -c 'fenced by other consumer' "$ES_DAEMON_LOG")"
es_check "fenced: it shut down as on SIGTERM" grep -q 'msg="stopped"' "$ES_DAEMON_LOG"

# While it is down, more events come; a restart (what systemd does) gets
# them all, and nothing committed before is delivered again.
gen 50 1000 >"$ES_TMP/b.txt"
es_produce in "$ES_TMP/b.txt"
es_start_daemon "$CONFIG"
es_wait_lines "$OUT" 210 30 || true
es_eq "restarted: every event arrives, once" "$(es_ids "$ES_TMP/a.txt" "$ES_TMP"/c?.txt "$ES_TMP/b.txt")" "$(es_ids "$OUT")"
rc=0; es_stop_daemon TERM || rc=$?
es_eq "restarted: SIGTERM exits 0" 0 "$rc"

# --- the commit at shutdown refused: logged once (its result also
# reaches the commit callback, which logged it a second time). No periodic
# commit comes first: the interval is a minute.
LONG=$(es_config long "$(sed 's/"commit_interval_ms": 200/"commit_interval_ms": 60000/' "$CONFIG")")
es_start_daemon "$LONG"
gen 10 2000 >"$ES_TMP/d.txt"
es_produce in "$ES_TMP/d.txt"
es_wait_lines "$OUT" 220 30 || true
es_broker_push "$BROKER_PID" "$BROKER_OUT" "$CONTROL" "OffsetCommit GROUP_AUTHORIZATION_FAILED 1"
rc=0; es_stop_daemon TERM || rc=$?
es_eq "shutdown commit refused: SIGTERM still exits 0" 0 "$rc"
es_eq "shutdown commit refused: logged once" 1 "$(grep -c 'Group authorization failed' "$ES_DAEMON_LOG")"

es_finish
