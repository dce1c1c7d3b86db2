#!/usr/bin/env bash
# Kafka outages: a kafka sink's target cluster going down holds back only
# that sink (its deliveries retried until it returns, nothing lost, nothing
# dead-lettered), and the source cluster going down stops consumption,
# turns /ready to 503 and logs each broker failure once; when it returns
# the group rejoins, commits resume and every event arrives. A SIGTERM
# during an outage still stops the daemon in time. es-broker takes its
# cluster down on SIGUSR1 (the data kept) and back up on SIGUSR2.
. "$(dirname "$0")/lib.sh"

es_start_broker -t in:4 -t eventstream.dlq:1
SOURCE_PID=$BROKER_PID SOURCE_OUT=$BROKER_OUT SOURCE=$BOOTSTRAP
es_start_broker -t out:4
TARGET_PID=$BROKER_PID TARGET_OUT=$BROKER_OUT TARGET=$BOOTSTRAP
BOOTSTRAP=$SOURCE

OUT="$ES_TMP/out.jsonl"
PORT=$(es_free_port)
TOKEN=t-$RANDOM
URL="http://127.0.0.1:$PORT"
# Short timeouts so the outages below last seconds: the group's session,
# and how long a produce (the host's dead letters, the sink's events) may
# wait for a broker before it is failed and retried.
CONFIG=$(es_config outage "{
  \"kafka\": {\"brokers\": \"$SOURCE\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\",
     \"message.timeout.ms\": \"3000\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"retry\": {\"initial_backoff_ms\": 100, \"max_backoff_ms\": 1000},
  \"pipeline\": {\"commit_interval_ms\": 200},
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"instances\": {
    \"file\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}},
    \"copy\": {\"plugin\": \"kafka\", \"config\": {\"brokers\": \"$TARGET\",
       \"topic\": \"out\", \"properties\": {\"message.timeout.ms\": 2000}}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"in\"], \"destinations\": [\"file\", \"copy\"]}]
}")

ready_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/ready"; }
wait_ready_code() { # CODE SECONDS
    local i
    for i in $(seq 1 $(($2 * 10))); do
        [ "$(ready_code)" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
target_ids() { # COUNT: the ids in the target topic, once each
    es_consume out "$1" "$ES_TMP/target.jsonl" "$TARGET"
    es_ids "$ES_TMP/target.jsonl" | uniq
}

es_start_daemon "$CONFIG"
gen() { python3 "$SRC_DIR/tests/e2e/gen_events.py" "$1" --keyed --start "$2"; }
gen 100 0 >"$ES_TMP/a.txt"
es_produce in "$ES_TMP/a.txt"
es_wait_lines "$OUT" 100 30 || true
es_eq "before any outage: the file has every event" 100 "$(es_count "$OUT")"
es_eq "before any outage: the target topic has every event" 100 "$(target_ids 100 | wc -l)"

# --- the kafka sink's target cluster goes down
es_broker_outage "$TARGET_PID" "$TARGET_OUT" down
gen 300 1000 >"$ES_TMP/b.txt"
es_produce in "$ES_TMP/b.txt"
es_wait_lines "$OUT" 400 20 || true
es_eq "target down: the file sink still gets every event at once" 400 "$(es_count "$OUT")"
for i in $(seq 1 150); do
    [ "$(es_metric 'es_retried_total{destination="copy"}')" -gt 0 ] 2>/dev/null && break
    sleep 0.1
done
es_check "target down: the kafka sink's deliveries are retried" \
    test "$(es_metric 'es_retried_total{destination="copy"}')" -gt 0
es_eq "target down: the daemon stays ready (its own cluster is up)" 200 "$(ready_code)"
es_broker_outage "$TARGET_PID" "$TARGET_OUT" up
es_eq "target back: every event reaches it, none lost" \
    "$(es_ids "$ES_TMP/a.txt" "$ES_TMP/b.txt")" "$(target_ids 400)"
dead=$(es_metric 'es_dead_lettered_total{destination="copy"}')
es_eq "target outage: nothing dead-lettered" 0 "${dead:-0}"

# --- the source cluster goes down
revoked=$(grep -c 'partitions revoked' "$ES_DAEMON_LOG" || true)
assigned=$(grep -c 'partitions assigned' "$ES_DAEMON_LOG" || true)
es_broker_outage "$SOURCE_PID" "$SOURCE_OUT" down
es_check "source down: /ready turns 503 once the group's session ends" wait_ready_code 503 20
es_check "source down: the daemon lets its partitions go" \
    test "$(grep -c 'partitions revoked' "$ES_DAEMON_LOG")" -gt "$revoked"
es_check "source down: the lost membership is logged" \
    grep -q 'level=warn .*consumer lost its group membership group=eventstreamd; not ready until it rejoins' "$ES_DAEMON_LOG"
es_eq "source down: /health still answers" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")"
es_check "a broker failure is logged as a warning naming the error" \
    grep -qE 'level=warn component="rdkafka#consumer-[0-9]+" msg="_TRANSPORT: .*Connection refused' "$ES_DAEMON_LOG"
# librdkafka, left to itself, logs each error twice ("FAIL" and "ERROR").
es_eq "a broker failure is logged once" 0 "$(grep -c 'ERROR: \[thrd:app\]\|FAIL: \[thrd' "$ES_DAEMON_LOG" || true)"
es_broker_outage "$SOURCE_PID" "$SOURCE_OUT" up
es_check "source back: ready again" wait_ready_code 200 40
es_check "source back: the group is assigned its partitions again" \
    test "$(grep -c 'partitions assigned' "$ES_DAEMON_LOG")" -gt "$assigned"
es_check "source back: the rejoin is logged" grep -q 'consumer rejoined group=eventstreamd' "$ES_DAEMON_LOG"
gen 200 5000 >"$ES_TMP/c.txt"
printf 'x\t{"broken"\nx\tnot json\n' >"$ES_TMP/bad.txt"
es_produce in "$ES_TMP/c.txt"
es_produce in "$ES_TMP/bad.txt"
es_wait_lines "$OUT" 600 30 || true
es_eq "source back: the file has every event, each once" \
    "$(es_ids "$ES_TMP/a.txt" "$ES_TMP/b.txt" "$ES_TMP/c.txt")" "$(es_ids "$OUT")"
es_eq "source back: the target topic has every event" \
    "$(es_ids "$ES_TMP/a.txt" "$ES_TMP/b.txt" "$ES_TMP/c.txt" | uniq)" "$(target_ids 600)"
es_consume eventstream.dlq 2 "$ES_TMP/dlq.txt" "$SOURCE" '%h\n'
es_eq "source back: the two malformed records are dead-lettered with a reason" 2 \
    "$(grep -c 'es_reason=invalid JSON' "$ES_TMP/dlq.txt" || true)"
es_stop_daemon TERM

# Commits resumed after the outage: a restart redelivers nothing.
es_start_daemon "$CONFIG"
sleep 3
es_eq "restart after the outage: nothing redelivered" 600 "$(es_count "$OUT")"

# --- SIGTERM while the source cluster is down
es_broker_outage "$SOURCE_PID" "$SOURCE_OUT" down
sleep 2
started=$SECONDS rc=0
es_stop_daemon TERM || rc=$?
es_eq "SIGTERM during an outage: exit 0" 0 "$rc"
es_check "SIGTERM during an outage: stopped within the shutdown timeout" \
    test $((SECONDS - started)) -le 12
es_broker_outage "$SOURCE_PID" "$SOURCE_OUT" up

# --- dead letters while the cluster is down: both clusters go down, the
# kafka sink gives up on its events (2 attempts) and dead-letters them to
# the unreachable source cluster. Each is retried with backoff, the streak
# is logged once, and every dead letter is written once the cluster returns.
GIVE_UP=$(es_config outage-dlq "$(sed 's/"max_backoff_ms": 1000}/"max_backoff_ms": 1000, "max_attempts": 2}/' "$CONFIG")")
es_check "the give-up config sets max_attempts" grep -q '"max_attempts": 2' "$GIVE_UP"
es_start_daemon "$GIVE_UP"
es_broker_outage "$TARGET_PID" "$TARGET_OUT" down
gen 20 9000 >"$ES_TMP/d.txt"
es_produce in "$ES_TMP/d.txt"
es_wait_lines "$OUT" 620 20 || true
es_broker_outage "$SOURCE_PID" "$SOURCE_OUT" down
for i in $(seq 1 300); do
    [ "$(es_metric es_dead_letter_retries_total)" -ge 40 ] 2>/dev/null && break
    sleep 0.1
done
es_check "both down: the dead letters are retried (es_dead_letter_retries_total)" \
    test "$(es_metric es_dead_letter_retries_total)" -ge 40
es_eq "both down: the failing streak is logged once" 1 \
    "$(grep -c 'dead letter not written' "$ES_DAEMON_LOG" || true)"
es_broker_outage "$SOURCE_PID" "$SOURCE_OUT" up
es_consume eventstream.dlq 22 "$ES_TMP/dlq2.txt" "$SOURCE" '%h\n'
es_eq "source back: the sink's 20 given-up events are dead letters" 20 \
    "$(grep -c 'es_reason=gave up after 2 attempts.*es_destination=copy' "$ES_TMP/dlq2.txt" || true)"
es_check "and the recovery is logged" es_wait_log 'dead letters written again after [0-9]+ failure' 10
es_broker_outage "$TARGET_PID" "$TARGET_OUT" up
es_stop_daemon TERM
es_check "no sanitizer report" bash -c "! grep -l 'runtime error\|Sanitizer' $ES_TMP/daemon.*.log"
es_finish
