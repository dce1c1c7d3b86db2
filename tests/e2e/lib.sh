# Shared helpers for the end-to-end tests. Source it from a test script:
#   . "$(dirname "$0")/lib.sh"
# Needs BUILD_DIR (the configured build tree) and SRC_DIR (the source tree);
# both default to what scripts/test passes.
set -euo pipefail

: "${SRC_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${BUILD_DIR:=$SRC_DIR/_build}"
# As scripts/test sets them, so that a suite run alone behaves the same.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ES_BIN="$BUILD_DIR/host/eventstreamd"
ES_BROKER_BIN="$BUILD_DIR/host/es-broker"
ES_PLUGIN_DIR="$BUILD_DIR/build-plugins"
ES_TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-e2e.XXXXXX")
ES_PASSED=0
ES_FAILED=0
ES_PIDS=()
ES_DAEMON_PID=""
ES_DAEMON_LOG=""

es_cleanup() {
    local pid
    for pid in "${ES_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${ES_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${ES_KEEP_TMP:-}" = "" ]; then rm -rf "$ES_TMP"; fi
}
trap es_cleanup EXIT

es_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# es_check NAME CONDITION-COMMAND... : records a pass or a failure.
es_check() {
    local name=$1
    shift
    if "$@"; then
        ES_PASSED=$((ES_PASSED + 1))
        echo "PASS: $name"
    else
        ES_FAILED=$((ES_FAILED + 1))
        echo "FAIL: $name"
    fi
}

# es_eq NAME EXPECTED ACTUAL
es_eq() {
    if [ "$2" = "$3" ]; then
        ES_PASSED=$((ES_PASSED + 1))
        echo "PASS: $1"
    else
        ES_FAILED=$((ES_FAILED + 1))
        echo "FAIL: $1 (expected '$2', got '$3')"
    fi
}

# Prints the summary line and exits non-zero on any failure.
es_finish() {
    echo "$ES_PASSED passed, $ES_FAILED failed"
    [ "$ES_FAILED" -eq 0 ]
}

# es_start_broker [es-broker args...]: starts a standalone mock broker and
# sets BOOTSTRAP (and BROKER_PID, BROKER_OUT: its stdout). Call it again for
# a second cluster; the previous BOOTSTRAP is then in the caller's hands.
es_start_broker() {
    local out="$ES_TMP/broker.$RANDOM.out"
    "$ES_BROKER_BIN" "$@" >"$out" 2>"$out.err" &
    BROKER_PID=$!
    BROKER_OUT=$out
    ES_PIDS+=("$BROKER_PID")
    local i
    for i in $(seq 1 100); do
        if grep -q '^bootstrap=' "$out" 2>/dev/null; then
            BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$out")
            export BOOTSTRAP
            return 0
        fi
        sleep 0.05
    done
    echo "es-broker did not start: $(cat "$out.err")" >&2
    return 1
}

# es_broker_outage PID OUT down|up: takes every broker of the cluster
# started as PID (stdout OUT) down, or back up, and waits until es-broker
# confirms it.
es_broker_outage() {
    local pid=$1 out=$2 state=$3 want i
    want=$(($(grep -cx "$state" "$out" || true) + 1))
    if [ "$state" = down ]; then kill -USR1 "$pid"; else kill -USR2 "$pid"; fi
    for i in $(seq 1 100); do
        [ "$(grep -cx "$state" "$out" || true)" -ge "$want" ] && return 0
        sleep 0.05
    done
    echo "es-broker $pid did not confirm '$state'" >&2
    return 1
}

# es_broker_push PID OUT CONTROL LINE...: makes the cluster started as PID
# (stdout OUT, with -c CONTROL) fail requests as each LINE says ("API ERROR
# [COUNT [DELAY_MS]]", see es-broker -h), and waits until es-broker
# confirms it.
es_broker_push() {
    local pid=$1 out=$2 control=$3 want i
    shift 3
    printf '%s\n' "$@" >"$control"
    want=$(($(grep -c '^push' "$out" || true) + 1))
    kill -HUP "$pid"
    for i in $(seq 1 100); do
        if [ "$(grep -c '^push' "$out" || true)" -ge "$want" ]; then
            grep '^push' "$out" | tail -1 | grep -qx "pushed $#" && return 0
            echo "es-broker $pid: $(grep '^push' "$out" | tail -1)" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "es-broker $pid did not confirm the push" >&2
    return 1
}

# es_free_port: a TCP port on 127.0.0.1 that nothing listens on now, below
# the kernel's ephemeral range (32768-60999 by default): a port in that
# range can be taken by any outgoing connection (a Kafka client's, curl's)
# between the choice and the daemon's bind.
es_free_port() {
    python3 - <<'PY'
import random, socket
lo = 20000
try:
    hi = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0]) - 1
except OSError:
    hi = 32767
if hi < lo + 1000:
    hi = 32767
for _ in range(500):
    port = random.randint(lo, hi)
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
}

# es_config NAME JSON: writes a config file and prints its path.
es_config() {
    local path="$ES_TMP/$1.json"
    printf '%s\n' "$2" >"$path"
    echo "$path"
}

# es_start_daemon CONFIG [LOG]: starts eventstreamd in the background and
# waits until every consumer group has been assigned partitions.
es_start_daemon() {
    local config=$1
    ES_DAEMON_LOG=${2:-$ES_TMP/daemon.$RANDOM.log}
    "$ES_BIN" -c "$config" 2>>"$ES_DAEMON_LOG" &
    ES_DAEMON_PID=$!
    ES_PIDS+=("$ES_DAEMON_PID")
    es_wait_log "consumer joined" 60
}

# es_stop_daemon [SIGNAL]: stops the daemon and waits for it to exit.
es_stop_daemon() {
    local sig=${1:-TERM}
    [ -n "$ES_DAEMON_PID" ] || return 0
    kill -s "$sig" "$ES_DAEMON_PID" 2>/dev/null || true
    local rc=0
    wait "$ES_DAEMON_PID" 2>/dev/null || rc=$?
    ES_DAEMON_PID=""
    return $rc
}

# es_wait_log PATTERN [SECONDS]: waits for PATTERN (grep -E) in the
# daemon's log.
es_wait_log() {
    local pattern=$1 secs=${2:-30} i
    for i in $(seq 1 $((secs * 10))); do
        if grep -qE "$pattern" "$ES_DAEMON_LOG" 2>/dev/null; then return 0; fi
        if [ -n "$ES_DAEMON_PID" ] && ! kill -0 "$ES_DAEMON_PID" 2>/dev/null; then
            echo "daemon exited while waiting for '$pattern':" >&2
            tail -20 "$ES_DAEMON_LOG" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $ES_DAEMON_LOG" >&2
    tail -20 "$ES_DAEMON_LOG" >&2
    return 1
}

# es_produce TOPIC FILE [BROKERS]: one record per line; a line
# "KEY<TAB>VALUE" sets the key.
es_produce() {
    local topic=$1 file=$2 brokers=${3:-$BOOTSTRAP}
    if grep -q $'\t' "$file"; then
        kcat -P -b "$brokers" -t "$topic" -K $'\t' -z none <"$file"
    else
        kcat -P -b "$brokers" -t "$topic" -z none <"$file"
    fi
}

# es_consume TOPIC COUNT OUTFILE [BROKERS] [kcat format]: waits for COUNT
# records from the beginning (gives up after 30 s).
es_consume() {
    local topic=$1 count=$2 out=$3 brokers=${4:-$BOOTSTRAP} fmt=${5:-'%s\n'}
    timeout 30 kcat -C -b "$brokers" -t "$topic" -o beginning -c "$count" \
        -q -f "$fmt" >"$out" 2>/dev/null || true
}

# es_consume_all TOPIC OUTFILE [BROKERS] [kcat format]: what is there now.
es_consume_all() {
    local topic=$1 out=$2 brokers=${3:-$BOOTSTRAP} fmt=${4:-'%s\n'}
    timeout 30 kcat -C -b "$brokers" -t "$topic" -o beginning -e -q \
        -f "$fmt" >"$out" 2>/dev/null || true
}

# es_wait_lines FILE COUNT [SECONDS]: waits until FILE has COUNT lines.
es_wait_lines() {
    local file=$1 count=$2 secs=${3:-60} i
    for i in $(seq 1 $((secs * 10))); do
        if [ -f "$file" ] && [ "$(wc -l <"$file")" -ge "$count" ]; then return 0; fi
        sleep 0.1
    done
    return 1
}

# es_metric NAME{LABELS}: its value on the daemon's /metrics (URL and TOKEN
# set by the suite); empty when the family has no such sample.
es_metric() {
    curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" |
        awk -v k="$1" '$1 == k {print $2}'
}

# es_wait_metric NAME{LABELS} VALUE SECONDS: until /metrics shows VALUE.
es_wait_metric() {
    local i
    for i in $(seq 1 $(($3 * 10))); do
        [ "$(es_metric "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# es_ids FILE...: the ids of the events in the files, sorted, repeats kept
# (a line is a CloudEvent, or KEY<TAB>CloudEvent as es_produce takes it).
es_ids() { python3 -c '
import json,sys
for f in sys.argv[1:]:
    for l in open(f):
        print(json.loads(l.split("\t",1)[-1])["id"])' "$@" | sort; }

# es_count FILE: number of lines (0 if absent).
es_count() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }
