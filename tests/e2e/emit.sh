#!/usr/bin/env bash
# The host producer: a handler's emitted events reach their topic keyed by
# tenant, and KAFKA_ENABLED=false turns emits and dead letters into counted,
# logged-once no-ops while consumption goes on.
. "$(dirname "$0")/lib.sh"

PLUGINS="$ES_TMP/plugins"
mkdir -p "$PLUGINS"
ln -s "$ES_PLUGIN_DIR/file.so" "$PLUGINS/file.so"
ln -s "$BUILD_DIR/tests/plugins/.libs/echo.so" "$PLUGINS/echo.so"
es_start_broker -t in:2 -t echo-out:2 -t eventstream.dlq:1
OUT="$ES_TMP/out.jsonl"
CONFIG=$(es_config emit "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$PLUGINS\", \"state_dir\": \"$ES_TMP/state\",
  \"instances\": {\"echo\": {\"plugin\": \"echo\", \"config\": {\"topic\": \"echo-out\"}},
                  \"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"in\"], \"destinations\": [\"echo\", \"out\"]}]
}")

es_start_daemon "$CONFIG"
python3 "$SRC_DIR/tests/e2e/gen_events.py" 500 --keyed >"$ES_TMP/a.txt"
es_produce in "$ES_TMP/a.txt"
es_consume echo-out 500 "$ES_TMP/echo.txt" "$BOOTSTRAP" '%k\t%s\n'
es_eq "500 emitted events arrive" 500 "$(es_count "$ES_TMP/echo.txt")"
es_check "emitted ids derive from the input ids" \
    cmp -s <(python3 -c '
import json,sys
print("\n".join(sorted("echo-" + json.loads(l.split("\t",1)[1])["id"] for l in open(sys.argv[1]))))' "$ES_TMP/a.txt") \
    <(python3 -c '
import json,sys
print("\n".join(sorted(json.loads(l.split("\t",1)[1])["id"] for l in open(sys.argv[1]))))' "$ES_TMP/echo.txt")
es_check "emitted events are keyed by tenant" python3 -c '
import json,sys
for l in open(sys.argv[1]):
    k, v = l.rstrip("\n").split("\t", 1)
    e = json.loads(v)
    assert k == e.get("tenantid", e["data"].get("tenantId")), (k, v)' "$ES_TMP/echo.txt"
es_stop_daemon TERM

# KAFKA_ENABLED=false: consumption continues, publishing is skipped.
KAFKA_ENABLED=false es_start_daemon "$CONFIG"
python3 "$SRC_DIR/tests/e2e/gen_events.py" 100 --start 1000 --keyed >"$ES_TMP/b.txt"
printf 'x\t{"broken"\n' >>"$ES_TMP/b.txt"
es_produce in "$ES_TMP/b.txt"
es_wait_lines "$OUT" 600 30 || true
es_eq "file sink still receives with KAFKA_ENABLED=false" 600 "$(es_count "$OUT")"
es_wait_log 'dead letter skipped \(KAFKA_ENABLED=false\)' 20 || true
es_eq "disabled publishing is logged once" 1 "$(grep -c 'KAFKA_ENABLED=false: Kafka publishing is off' "$ES_DAEMON_LOG")"
es_check "skipped dead letter logs its reason" grep -q 'dead letter skipped (KAFKA_ENABLED=false).*invalid JSON' "$ES_DAEMON_LOG"
es_stop_daemon TERM
es_consume_all echo-out "$ES_TMP/echo2.txt"
es_eq "nothing emitted while disabled" 500 "$(es_count "$ES_TMP/echo2.txt")"
es_consume_all eventstream.dlq "$ES_TMP/dlq.txt"
es_eq "no dead letter produced while disabled" 0 "$(es_count "$ES_TMP/dlq.txt")"

# An emit to a name Kafka refuses fails at once with the reason (it failed
# in the producer, after the handler had answered); the handler's RETRYs
# end in the dead-letter topic with it.
BADTOPIC=$(es_config emit-bad "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$PLUGINS\", \"state_dir\": \"$ES_TMP/state\",
  \"retry\": {\"initial_backoff_ms\": 10, \"max_backoff_ms\": 20, \"max_attempts\": 2},
  \"instances\": {\"echo\": {\"plugin\": \"echo\", \"config\": {\"topic\": \"echo out\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"in\"], \"destinations\": [\"echo\"]}]
}")
es_start_daemon "$BADTOPIC"
python3 "$SRC_DIR/tests/e2e/gen_events.py" 1 --start 5000 --keyed >"$ES_TMP/c.txt"
es_produce in "$ES_TMP/c.txt"
es_consume eventstream.dlq 1 "$ES_TMP/dlq-bad.txt" "$BOOTSTRAP" '%h\n'
es_check "an emit to an invalid topic name: dead-lettered with the reason" \
    grep -qF 'es_reason=gave up after 2 attempts: emit: "echo out" is not a Kafka topic name' "$ES_TMP/dlq-bad.txt"
es_stop_daemon TERM

# A dead letter too large for the producer (message.max.bytes) is written
# bare, with the reason and where the record is, instead of failing for
# ever and holding its partition's commits: the record after it commits.
SMALL=$(es_config emit-small "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"group_id\": \"small\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\",
     \"message.max.bytes\": \"1500\"}},
  \"plugin_dir\": \"$PLUGINS\", \"state_dir\": \"$ES_TMP/state\",
  \"pipeline\": {\"commit_interval_ms\": 200},
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ES_TMP/small.jsonl\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"small-in\"], \"destinations\": [\"out\"]}]
}")
es_start_daemon "$SMALL"
python3 -c 'print("big\t{\"broken\": \"" + "x" * 3000); print("little\t{\"broken\"")' >"$ES_TMP/big.txt"
python3 "$SRC_DIR/tests/e2e/gen_events.py" 3 --start 7000 --keyed >>"$ES_TMP/big.txt"
kcat -P -b "$BOOTSTRAP" -t small-in -p 0 -K $'\t' -z none <"$ES_TMP/big.txt"
es_wait_lines "$ES_TMP/small.jsonl" 3 20 || true
es_eq "the events after a too-large bad record are delivered" 3 "$(es_count "$ES_TMP/small.jsonl")"
es_consume eventstream.dlq 3 "$ES_TMP/dlq-small.txt" "$BOOTSTRAP" '%k|%S|%h\n' # and the emit section's one
es_check "the too-large dead letter is written bare: no key, no value, what was left out" \
    grep -qE '^\|-1\|es_reason=invalid JSON at byte [0-9]+,.*es_topic=small-in,es_partition=0,es_offset=0,.*es_left_out=3012-byte value, 3-byte key and 0 header\(s\) left out: too large for the producer' "$ES_TMP/dlq-small.txt"
es_check "the small one is written whole" \
    grep -qE '^little\|9\|es_reason=invalid JSON at byte [0-9]+,.*es_offset=1,es_attempts=1$' "$ES_TMP/dlq-small.txt"
es_check "the bare write is logged" grep -q 'dead letter of topic=small-in partition=0 offset=0 written bare' "$ES_DAEMON_LOG"
sleep 1
es_stop_daemon TERM
es_start_daemon "$SMALL"
sleep 2
es_eq "its partition committed past it: a restart redelivers nothing" 3 "$(es_count "$ES_TMP/small.jsonl")"
es_stop_daemon TERM
es_finish
