#!/usr/bin/env bash
# Parking a failing destination (docs/parking.md): two destinations on one
# topic, one healthy, one failing. The healthy one keeps receiving and the
# main offsets move on while the other is parked to its own topic; a SIGKILL
# while parked loses nothing; after recovery the failing one receives every
# event once, in order per source partition, then goes direct again.
. "$(dirname "$0")/lib.sh"

PLUGINS="$ES_TMP/plugins"
mkdir -p "$PLUGINS"
ln -s "$ES_PLUGIN_DIR/file.so" "$PLUGINS/file.so"
ln -s "$BUILD_DIR/tests/plugins/.libs/switch.so" "$PLUGINS/switch.so"
TOPIC=park-in
PARK=eventstream.park.flaky
GEN="$SRC_DIR/tests/e2e/gen_events.py"
es_start_broker -t "$TOPIC:2" -t eventstream.dlq:1
PORT=$(es_free_port)
TOKEN=t-$RANDOM
URL=http://127.0.0.1:$PORT
OUT_H="$ES_TMP/healthy.jsonl"
OUT_F="$ES_TMP/flaky.tsv"
DOWN="$ES_TMP/down"

instances() {
    echo "\"instances\": {
    \"healthy\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT_H\"}},
    \"flaky\": {\"plugin\": \"switch\", \"config\": {\"path\": \"$OUT_F\",
        \"fail_file\": \"$DOWN\", \"poison\": \"poison-\", \"delay_ms\": 2},
      \"park\": $1}}"
}
config() { # NAME PARK-OBJECT
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$PLUGINS\", \"state_dir\": \"$ES_TMP/state\",
  \"retry\": {\"initial_backoff_ms\": 50, \"max_backoff_ms\": 400, \"max_attempts\": 0},
  \"pipeline\": {\"commit_interval_ms\": 200, \"max_inflight\": 100, \"batch_size\": 50},
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  $(instances "$2"),
  \"routes\": [{\"name\": \"r\", \"topics\": [\"$TOPIC\"], \"destinations\": [\"healthy\", \"flaky\"]}]
}"
}

# --- config: the keys are checked and errors name file and key
msg=$("$ES_BIN" --check-config "$(config c1 '{"after_ms": 0, "after_attempts": 0}')" 2>&1 || true)
es_check "park: both thresholds 0 is an error" grep -q 'c1.json: instances.flaky.park: after_ms and after_attempts are both 0' <<<"$msg"
msg=$("$ES_BIN" --check-config "$(config c2 '{"afterms": 5}')" 2>&1 || true)
es_check "park: unknown key named" grep -q 'c2.json: instances.flaky.park.afterms: unknown key' <<<"$msg"
msg=$("$ES_BIN" --check-config "$(config c3 "{\"topic\": \"$TOPIC\"}")" 2>&1 || true)
es_check "park: topic consumed by a route is an error" grep -q "c3.json: instances.flaky.park.topic: \"$TOPIC\" is consumed by route \"r\"" <<<"$msg"
CONFIG=$(config park '{"after_attempts": 3, "after_ms": 2000}')
es_check "park config checks OK" "$ES_BIN" --check-config "$CONFIG"

# --- the flaky destination fails: the healthy one is not held back (with
# max_inflight 100, the failing one's events would pause the consumer after
# 100 of the 300 if they stayed in the retry heap)
touch "$DOWN"
es_start_daemon "$CONFIG"
es_wait_log "park drainer assigned" 30
python3 "$GEN" 300 --keyed >"$ES_TMP/b1.txt"
t0=$(date +%s)
es_produce "$TOPIC" "$ES_TMP/b1.txt"
es_wait_lines "$OUT_H" 300 20 || true
es_eq "healthy destination receives all 300 while the other fails" 300 "$(es_count "$OUT_H")"
es_check "... promptly (under 10 s)" test $(($(date +%s) - t0)) -lt 10
es_check "failing destination is parked" es_wait_log 'destination parked: an event failed' 20
es_check "every event of the failing one is parked (acknowledged)" es_wait_metric 'es_parked_total{destination="flaky"}' 300 20
es_eq "es_parked gauge is 1" 1 "$(es_metric 'es_parked{destination="flaky"}')"
es_eq "nothing reached the failing destination" 0 "$(es_count "$OUT_F")"
es_eq "state change logged once" 1 "$(grep -c 'destination parked' "$ES_DAEMON_LOG")"
es_consume "$PARK" 300 "$ES_TMP/park1.txt" "$BOOTSTRAP" '%k|%h|%s\n'
es_eq "300 events in the park topic" 300 "$(es_count "$ES_TMP/park1.txt")"
es_check "park records carry the origin" grep -q "^flaky|es_park_destination=flaky,es_park_route=r,es_park_tenant=[^,]*,es_park_topic=$TOPIC,es_park_partition=[01],es_park_offset=[0-9]*,es_park_timestamp=[0-9]*,es_park_key=" "$ES_TMP/park1.txt"
es_check "park records hold the events" cmp -s <(es_ids "$ES_TMP/b1.txt") \
    <(sed 's/^[^|]*|[^|]*|//' "$ES_TMP/park1.txt" | es_ids /dev/stdin)

# --- new events while parked go straight to the park topic
printf 'poisonkey\t{"specversion":"1.0","id":"poison-1","source":"s","type":"t","tenantid":"x"}\n' >"$ES_TMP/poison.txt"
es_produce "$TOPIC" "$ES_TMP/poison.txt"
python3 "$GEN" 100 --start 300 --keyed >"$ES_TMP/b2.txt"
es_produce "$TOPIC" "$ES_TMP/b2.txt"
es_wait_lines "$OUT_H" 401 20 || true
es_eq "healthy destination still receiving" 401 "$(es_count "$OUT_H")"
es_check "new events parked too" es_wait_metric 'es_parked_total{destination="flaky"}' 401 20
sleep 1 # past the commit interval: the main offsets have moved on

# --- SIGKILL while parked, restart while still failing: nothing lost
es_stop_daemon KILL || true
es_start_daemon "$CONFIG"
es_check "restart: starts parked (park topic not drained)" es_wait_log 'destination starts parked' 5
python3 "$GEN" 100 --start 400 --keyed >"$ES_TMP/b3.txt"
es_produce "$TOPIC" "$ES_TMP/b3.txt"
es_wait_lines "$OUT_H" 501 20 || true
es_eq "healthy: 501 after restart" 501 "$(es_count "$OUT_H")"
es_eq "healthy: no event twice (main offsets were committed while parked)" 501 "$(es_ids "$OUT_H" | uniq | wc -l | tr -d ' ')"
es_check "restart: new events parked behind the old ones" es_wait_metric 'es_parked_total{destination="flaky"}' 100 20
es_eq "still nothing at the failing destination" 0 "$(es_count "$OUT_F")"

# --- recovery: drained in order, exactly once, poison dead-lettered
rm -f "$DOWN"
for i in $(seq 1 3000); do # stop it a few events into the drain
    [ "$(es_count "$OUT_F")" -ge 10 ] && break
    sleep 0.01
done
rc=0; es_stop_daemon TERM || rc=$?
es_eq "SIGTERM in the middle of the drain exits 0" 0 "$rc"
before=$(es_count "$OUT_F")
es_check "... it had replayed part of the park topic" test "$before" -ge 10 -a "$before" -lt 300
es_start_daemon "$CONFIG"
es_wait_lines "$OUT_F" 500 60 || true
es_check "unparked after the drain" es_wait_log 'destination unparked' 20
es_eq "recovered destination received all 500" 500 "$(es_count "$OUT_F")"
es_check "... exactly the produced events, each once" cmp -s \
    <(es_ids "$ES_TMP/b1.txt" "$ES_TMP/b2.txt" "$ES_TMP/b3.txt") <(cut -f1 "$OUT_F" | sort)
es_check "... in offset order per source partition" awk -F'\t' '
    $2 != "park-in" { exit 1 }
    ($3 in last) && $4 <= last[$3] { exit 1 }
    { last[$3] = $4 }' "$OUT_F"
es_check "... with tenant, route and original key" awk -F'\t' '
    $5 != $7 || $6 != "r" { exit 1 }' "$OUT_F"
es_consume eventstream.dlq 1 "$ES_TMP/dlq.txt" "$BOOTSTRAP" '%k|%h|%s\n'
es_check "poison event dead-lettered from the drain with its origin" grep -q \
    "^poisonkey|es_reason=poison event,es_route=r,es_destination=flaky,es_plugin=switch,es_topic=$TOPIC,es_partition=[01],es_offset=[0-9]" "$ES_TMP/dlq.txt"
es_eq "es_parked gauge back to 0" 0 "$(es_metric 'es_parked{destination="flaky"}')"
es_eq "the drain resumed where SIGTERM committed it (es_drained_total)" $((501 - before)) "$(es_metric 'es_drained_total{destination="flaky"}')"

# --- unparked: new events go direct
python3 "$GEN" 50 --start 500 --keyed >"$ES_TMP/b4.txt"
es_produce "$TOPIC" "$ES_TMP/b4.txt"
es_wait_lines "$OUT_F" 550 20 || true
es_eq "direct again: 550 delivered" 550 "$(es_count "$OUT_F")"
es_consume_all "$PARK" "$ES_TMP/park2.txt"
es_eq "park topic did not grow" 501 "$(es_count "$ES_TMP/park2.txt")"
rc=0; es_stop_daemon TERM || rc=$?
es_eq "SIGTERM exits 0" 0 "$rc"

# --- two processes in the same groups: each parks its own partitions, one
# drainer replays everything, and both unpark (the one that does not own the
# park partition by asking Kafka whether the drain group is done)
MT=park-multi
OUT_M="$ES_TMP/multi.tsv"
OUT_MH="$ES_TMP/multi-healthy.jsonl"
multi_config() { # NAME PORT
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"group_id\": \"multi\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$PLUGINS\", \"state_dir\": \"$ES_TMP/state-$1\",
  \"retry\": {\"initial_backoff_ms\": 50, \"max_backoff_ms\": 400, \"max_attempts\": 0},
  \"pipeline\": {\"commit_interval_ms\": 200},
  \"instances\": {
    \"healthy\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT_MH.$1\"}},
    \"shared\": {\"plugin\": \"switch\", \"config\": {\"path\": \"$OUT_M.$1\",
        \"fail_file\": \"$DOWN\"}, \"park\": {\"after_attempts\": 3}}},
  \"routes\": [{\"name\": \"m\", \"topics\": [\"$MT\"], \"destinations\": [\"healthy\", \"shared\"]}]
}"
}
kcat -P -b "$BOOTSTRAP" -t "$MT" </dev/null 2>/dev/null || true
touch "$DOWN"
es_start_daemon "$(multi_config m1)"
PID1=$ES_DAEMON_PID LOG1=$ES_DAEMON_LOG
es_start_daemon "$(multi_config m2)"
PID2=$ES_DAEMON_PID LOG2=$ES_DAEMON_LOG
# the mock broker settles a joining member in two rebalances
for i in $(seq 1 120); do
    [ "$(grep -c "partitions assigned group=multi " "$LOG2")" -ge 2 ] && break
    sleep 0.1
done
python3 "$GEN" 200 --start 1000 --keyed >"$ES_TMP/m1.txt"
es_produce "$MT" "$ES_TMP/m1.txt"
for i in $(seq 1 200); do
    [ "$(cat "$OUT_MH".m* 2>/dev/null | wc -l)" -ge 200 ] && break
    sleep 0.1
done
es_eq "two processes: healthy destination got all 200" 200 "$(cat "$OUT_MH".m* | wc -l | tr -d ' ')"
# each parks after its third failed attempt (backoff 50-400 ms), which may
# come after the healthy destination has everything
for i in $(seq 1 100); do
    grep -q 'destination parked' "$LOG1" && grep -q 'destination parked' "$LOG2" && break
    sleep 0.1
done
es_check "two processes: both parked" bash -c "grep -q 'destination parked' '$LOG1' && grep -q 'destination parked' '$LOG2'"
rm -f "$DOWN"
for i in $(seq 1 300); do
    grep -q 'destination unparked' "$LOG1" && grep -q 'destination unparked' "$LOG2" && break
    sleep 0.1
done
es_check "two processes: both unparked after the drain" bash -c "grep -q 'destination unparked' '$LOG1' && grep -q 'destination unparked' '$LOG2'"
python3 "$GEN" 100 --start 1200 --keyed >"$ES_TMP/m2.txt"
es_produce "$MT" "$ES_TMP/m2.txt"
for i in $(seq 1 200); do
    [ "$(cat "$OUT_M".m* 2>/dev/null | wc -l)" -ge 300 ] && break
    sleep 0.1
done
es_check "two processes: every event once" cmp -s \
    <(es_ids "$ES_TMP/m1.txt" "$ES_TMP/m2.txt") <(cut -f1 "$OUT_M".m* | sort)
es_check "two processes: in offset order per source partition" bash -c "
    sort -t\$'\\t' -k9,9n $OUT_M.m* | awk -F'\\t' '(\$3 in l) && \$4 <= l[\$3] { exit 1 } { l[\$3] = \$4 }'"
es_consume_all eventstream.park.shared "$ES_TMP/parkm.txt"
es_eq "two processes: only the failing period was parked" 200 "$(es_count "$ES_TMP/parkm.txt")"
kill -TERM "$PID1" "$PID2"
wait "$PID1" "$PID2" || true

# --- an event larger than the producer takes (message.max.bytes) cannot be
# parked: it is dead-lettered (bare: too large for that too), and the
# events after it are parked, not held behind it for ever
touch "$DOWN"
BIG=$(es_config big "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"group_id\": \"big\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\",
     \"message.max.bytes\": \"2000\"}},
  \"plugin_dir\": \"$PLUGINS\", \"state_dir\": \"$ES_TMP/state-big\",
  \"retry\": {\"initial_backoff_ms\": 50, \"max_backoff_ms\": 400, \"max_attempts\": 0},
  \"instances\": {\"flaky\": {\"plugin\": \"switch\",
      \"config\": {\"path\": \"$ES_TMP/big.tsv\", \"fail_file\": \"$DOWN\"},
      \"park\": {\"after_attempts\": 1, \"after_ms\": 0, \"topic\": \"eventstream.park.big\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"park-big\"], \"destinations\": [\"flaky\"]}]
}")
es_start_daemon "$BIG" "$ES_TMP/daemon.big.log"
es_wait_log "park drainer assigned" 30
{
    python3 "$GEN" 1 --start 8000 --keyed
    python3 "$GEN" 1 --start 8001 --keyed --size 3000
    python3 "$GEN" 1 --start 8002 --keyed
} >"$ES_TMP/big1.txt"
kcat -P -b "$BOOTSTRAP" -t park-big -p 0 -K $'\t' -z none <"$ES_TMP/big1.txt"
es_consume eventstream.park.big 2 "$ES_TMP/parkbig.txt" "$BOOTSTRAP" '%k|%h|%s\n'
es_eq "too large to park: the events around it are parked" "evt-00008000 evt-00008002" \
    "$(sed 's/^[^|]*|[^|]*|//' "$ES_TMP/parkbig.txt" | es_ids /dev/stdin | tr '\n' ' ' | sed 's/ $//')"
es_check "and it is dead-lettered, saying why" \
    es_wait_log 'dead-lettering topic=park-big partition=0 offset=1 route=r: cannot be parked to eventstream.park.big: .*Message size too large' 20
es_consume_all eventstream.dlq "$ES_TMP/dlq-big.txt" "$BOOTSTRAP" '%S|%h\n'
es_check "its dead letter is bare (too large too) and names where it is" \
    grep -qE '^-1\|es_reason=cannot be parked to eventstream.park.big: .*es_topic=park-big,es_partition=0,es_offset=1,.*es_left_out=' "$ES_TMP/dlq-big.txt"
rm -f "$DOWN"
es_stop_daemon TERM
es_check "no sanitizer reports" bash -c "! grep -l 'runtime error\|Sanitizer' $ES_TMP/daemon.*.log"
es_finish
