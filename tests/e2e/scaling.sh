#!/usr/bin/env bash
# Scaling out and in: daemons sharing a consumer group split the topic's
# partitions. Events produced while a second daemon joins, while one leaves
# (SIGTERM) and while one dies (SIGKILL) all arrive at one sink or the
# other: nothing is lost across the rebalances. SCALING_MODE=eager (the
# default: librdkafka's default assignors) or coop
# (partition.assignment.strategy cooperative-sticky, where a rebalance
# moves only the partitions that change owner and the others keep
# flowing; scaling_coop.sh runs it).
. "$(dirname "$0")/lib.sh"

MODE=${SCALING_MODE:-eager}
es_start_broker -t "in.$MODE:8" -t eventstream.dlq:1
cfg() { # NAME OUT TOPIC STRATEGY-PROPERTY
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"group_id\": \"scale-$3\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\" $4}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state-$1\",
  \"pipeline\": {\"commit_interval_ms\": 200},
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$2\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"in.$3\"], \"destinations\": [\"out\"]}]
}"
}

start() { # CONF LOG: starts a daemon, sets PID
    es_start_daemon "$1" "$2"
    PID=$ES_DAEMON_PID
    ES_DAEMON_PID=""
}
# stream START COUNT: produces COUNT events over about COUNT/500 seconds in
# the background (sets STREAM), so the rebalances below happen mid-stream.
stream() {
    python3 "$SRC_DIR/tests/e2e/gen_events.py" "$2" --start "$1" --keyed --tenants 64 |
        python3 -c '
import sys, time
for i, line in enumerate(sys.stdin):
    sys.stdout.write(line)
    if i % 50 == 49:
        sys.stdout.flush()
        time.sleep(0.1)' |
        kcat -P -b "$BOOTSTRAP" -t "$TOPIC" -K $'\t' -z none -X linger.ms=5 &
    STREAM=$!
}
# The ids delivered by both daemons, with repeats; a line cut short by a
# SIGKILL is no id.
delivered() { python3 -c '
import json, sys
for f in sys.argv[1:]:
    try:
        lines = open(f).read().splitlines()
    except FileNotFoundError:
        continue
    for l in lines:
        try:
            print(json.loads(l)["id"])
        except ValueError:
            pass' "$A_OUT" "$B_OUT" | sort; }
expected() { # COUNT START...: the ids gen_events.py made
    python3 -c '
import sys
n = int(sys.argv[1])
print("\n".join(sorted("evt-%08d" % (s + i) for s in map(int, sys.argv[2:]) for i in range(n))))' "$@"
}
wait_all() { # COUNT START...: until every id has arrived (60 s at most)
    local want i
    want=$(expected "$@")
    for i in $(seq 1 300); do
        [ "$(delivered | uniq)" = "$want" ] && return 0
        sleep 0.2
    done
    return 1
}
twice() { # how many deliveries so far were repeats
    local all
    all=$(delivered)
    echo $(($(wc -l <<<"$all") - $(uniq <<<"$all" | wc -l)))
}
assigned() { # LOG COUNT: the daemon's assignment is now COUNT partitions
    local i
    for i in $(seq 1 200); do
        [ "$(grep 'partitions assigned group=' "$1" | tail -1 | sed 's/.*total=//;s/"$//')" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

scenario() { # eager|coop STRATEGY-PROPERTY WHAT EXPECTED-REVOKE
    local S=$1
    TOPIC=in.$S
    A_OUT=$ES_TMP/$S-a.jsonl B_OUT=$ES_TMP/$S-b.jsonl
    A_CONF=$(cfg "$S-a" "$A_OUT" "$S" "$2")
    B_CONF=$(cfg "$S-b" "$B_OUT" "$S" "$2")
    A_LOG=$ES_TMP/$S-a1.log B_LOG=$ES_TMP/$S-b1.log B2_LOG=$ES_TMP/$S-b2.log
    # --- scale out: a second daemon joins while events flow
    start "$A_CONF" "$A_LOG"
    A_PID=$PID
    stream 0 3000
    sleep 1
    start "$B_CONF" "$B_LOG"
    B_PID=$PID
    wait "$STREAM"
    es_check "$S: scale out: every event produced while the second daemon joined arrives" wait_all 3000 0
    es_check "$S: scale out: the second daemon takes half the partitions" assigned "$B_LOG" 4
    es_check "$S: scale out: and the first keeps the other half" assigned "$A_LOG" 4
    es_check "$S: scale out: both deliver" test -s "$B_OUT" -a -s "$A_OUT"
    es_log "$S: scale out: $(twice) event(s) delivered twice"
    dups=$(twice)

    # --- scale in, gracefully: SIGTERM the second while events flow
    stream 10000 3000
    sleep 1
    kill -TERM "$B_PID"
    rc=0
    wait "$B_PID" || rc=$?
    es_eq "$S: scale in: the leaving daemon exits 0" 0 "$rc"
    wait "$STREAM"
    es_check "$S: scale in: every event arrives" wait_all 3000 0 10000
    es_check "$S: scale in: the first daemon takes all eight partitions" assigned "$A_LOG" 8
    es_log "$S: scale in: $(($(twice) - dups)) event(s) delivered twice"
    dups=$(twice)

    # --- a crash: SIGKILL the first while events flow; the second takes over
    # once the group's session for it ends
    start "$B_CONF" "$B2_LOG"
    B_PID=$PID
    es_check "$S: again two daemons: four partitions each" assigned "$B2_LOG" 4
    stream 20000 3000
    sleep 1
    kill -KILL "$A_PID"
    wait "$A_PID" 2>/dev/null || true
    wait "$STREAM"
    es_check "$S: crash: every event arrives" wait_all 3000 0 10000 20000
    es_check "$S: crash: the survivor takes all eight partitions" assigned "$B2_LOG" 8
    crash=$(($(twice) - dups))
    es_log "$S: crash: $crash event(s) delivered twice (the dead daemon's uncommitted ones)"
    es_check "$S: crash: what is delivered twice is at most a few seconds of events (the uncommitted ones)" \
        test "$crash" -lt 1500

    # --- a join while nothing flows: what the incumbent gives up
    seen=$(wc -l <"$B2_LOG")
    start "$A_CONF" "$ES_TMP/$S-a2.log"
    A_PID=$PID
    es_check "$S: a quiet join: four partitions each" assigned "$ES_TMP/$S-a2.log" 4
    # An eager rebalance takes every partition from every member and hands
    # them out again; a cooperative one takes only those that move. (The
    # join's first revoke: a metadata refresh may start another rebalance.)
    es_eq "$S: the join took from the incumbent ${3}" "$4" \
        "$(tail -n +$((seen + 1)) "$B2_LOG" |
            grep -m1 -o 'partitions revoked group=[^ ]* count=[0-9]* total=[0-9]*' |
            sed 's/.* count=/count=/')"
    for pid in "$A_PID" "$B_PID"; do
        kill -TERM "$pid"
        rc=0
        wait "$pid" || rc=$?
        es_eq "$S: SIGTERM: exit 0" 0 "$rc"
    done
}

case $MODE in
eager) scenario eager "" "all eight" "count=8 total=0" ;;
coop)
    scenario coop ", \"partition.assignment.strategy\": \"cooperative-sticky\"" \
        "only the four that move" "count=4 total=4"
    ;;
*) echo "SCALING_MODE is eager or coop" >&2; exit 2 ;;
esac
es_check "no sanitizer report" bash -c "! grep -l 'runtime error\|Sanitizer' $ES_TMP/*.log"
es_finish
