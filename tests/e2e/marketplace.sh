#!/usr/bin/env bash
# End-to-end test of the marketplace order handler through eventstreamd on
# the mock broker: scripted order lifecycles for three tenants, out-of-order
# wallet events, duplicates, illegal transitions, an unknown order, an
# invalid amount and a repeated key (dead-lettered), a clean restart
# mid-stream (nothing emitted twice) and a crash mid-stream (nothing lost;
# any repeat is byte-identical). Every emitted event is consumed back with
# kcat and compared, all fields, with expectations computed here
# independently (UUIDv5 ids by Python's uuid module).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

for tool in kcat python3; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

TA=00000000-0000-0000-0000-00000000000a
TB=00000000-0000-0000-0000-00000000000b
TC=00000000-0000-0000-0000-00000000000c
T_QUOTE=eventzr.marketplace.quote.accepted.v1
T_PAY=eventzr.wallet.payment.completed.v1
T_ESCROW=eventzr.wallet.escrow.released.v1
T_CANCEL=eventzr.marketplace.order.cancel.requested.v1
T_DOPEN=eventzr.marketplace.dispute.open.requested.v1
T_DRES=eventzr.marketplace.dispute.resolve.requested.v1
INPUTS=("$T_QUOTE" "$T_PAY" "$T_ESCROW" "$T_CANCEL" "$T_DOPEN" "$T_DRES")
O_CREATED=eventzr.marketplace.order.created.v1
O_COMPLETED=eventzr.marketplace.order.completed.v1
O_CANCELLED=eventzr.marketplace.order.cancelled.v1
O_DOPENED=eventzr.marketplace.dispute.opened.v1
O_DRESOLVED=eventzr.marketplace.dispute.resolved.v1
OUTPUTS=("$O_CREATED" "$O_COMPLETED" "$O_CANCELLED" "$O_DOPENED" "$O_DRESOLVED")
DLQ=eventstream.dlq

EXPECTED="$ES_TMP/expected.tsv" # one line per event the handler must emit
SENT="$ES_TMP/sent.tsv"         # topic, tenant, value of each good input
: >"$EXPECTED"
: >"$SENT"
SEQ=0
DAEMON_LOGS=()

# ------------------------------------------------------------ input events

next_time() {
    SEQ=$((SEQ + 1))
    TS=$(printf '2026-03-02T%02d:%02d:%02d.000Z' $((10 + SEQ / 3600)) \
        $((SEQ / 60 % 60)) $((SEQ % 60)))
}

# event TYPE ID TENANT DATA: sets VAL to one CloudEvent (time from
# next_time). Builders run in this shell (no $(...)) so SEQ advances.
event() {
    local src=marketplace-svc
    case $1 in eventzr.wallet.*) src=wallet-svc ;; esac
    VAL=$(printf '{"specversion":"1.0","id":"%s","type":"%s","source":"%s","time":"%s","datacontenttype":"application/json","tenantid":"%s","data":%s}' \
        "$2" "$1" "$src" "$TS" "$3" "$4")
}

# expect TYPE TENANT INPUT_SOURCE INPUT_ID ORDER DATA: the handler must emit
# this event (at the current TS).
expect() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$TS" "$5" "$6" \
        >>"$EXPECTED"
}

# send TOPIC TENANT VALUE [good]: produces one record keyed by tenant.
send() {
    printf '%s\t%s\n' "$2" "$3" >"$ES_TMP/one.in"
    es_produce "$1" "$ES_TMP/one.in"
    if [ "${4:-}" = good ]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$SENT"; fi
}

# The builders set VAL and record what it must cause. Ids of the
# parties derive from the order id: quote-O, buyer-O, seller-O, pay-O, esc-O.
quote_ev() { # TENANT EVID ORDER AMOUNT CURRENCY
    next_time
    event "$T_QUOTE" "$2" "$1" "{\"id\":\"quote-$3\",\"listingId\":\"listing-$3\",\"buyerId\":\"buyer-$3\",\"sellerId\":\"seller-$3\",\"amount\":$4,\"currency\":\"$5\",\"orderId\":\"$3\"}"
    expect "$O_CREATED" "$1" marketplace-svc "$2" "$3" "{\"id\":\"$3\",\"status\":\"created\",\"quoteId\":\"quote-$3\",\"listingId\":\"listing-$3\",\"buyerId\":\"buyer-$3\",\"sellerId\":\"seller-$3\",\"amount\":$4,\"currency\":\"$5\",\"createdAt\":\"$TS\"}"
}
pay_ev() { # TENANT EVID ORDER AMOUNT CURRENCY
    next_time
    event "$T_PAY" "$2" "$1" "{\"id\":\"pay-$3\",\"orderId\":\"$3\",\"amount\":$4,\"currency\":\"$5\",\"method\":\"card\"}"
}
escrow_ev() { # TENANT EVID ORDER AMOUNT CURRENCY
    next_time
    event "$T_ESCROW" "$2" "$1" "{\"id\":\"esc-$3\",\"orderId\":\"$3\",\"paymentId\":\"pay-$3\",\"amount\":$4,\"currency\":\"$5\"}"
    expect "$O_COMPLETED" "$1" wallet-svc "$2" "$3" "{\"id\":\"$3\",\"status\":\"completed\",\"completedAt\":\"$TS\",\"finalAmount\":$4,\"currency\":\"$5\",\"quoteId\":\"quote-$3\",\"buyerId\":\"buyer-$3\",\"sellerId\":\"seller-$3\",\"paymentId\":\"pay-$3\",\"escrowId\":\"esc-$3\"}"
}
cancel_ev() { # TENANT EVID ORDER REFUND_STATUS REFUND_AMOUNT CURRENCY
    next_time
    event "$T_CANCEL" "$2" "$1" "{\"orderId\":\"$3\",\"reason\":\"buyer_request\",\"requestedBy\":\"buyer-$3\"}"
    expect "$O_CANCELLED" "$1" marketplace-svc "$2" "$3" "{\"id\":\"$3\",\"status\":\"cancelled\",\"reason\":\"buyer_request\",\"refundStatus\":\"$4\",\"refundAmount\":$5,\"currency\":\"$6\",\"cancelledAt\":\"$TS\",\"requestedBy\":\"buyer-$3\"}"
}
dopen_ev() { # TENANT EVID ORDER AMOUNT CURRENCY
    next_time
    event "$T_DOPEN" "$2" "$1" "{\"id\":\"dsp-$3\",\"orderId\":\"$3\",\"reason\":\"not_delivered\",\"evidence\":[\"https://files.example/$3.jpg\"],\"openedBy\":\"buyer-$3\"}"
    expect "$O_DOPENED" "$1" marketplace-svc "$2" "$3" "{\"id\":\"dsp-$3\",\"orderId\":\"$3\",\"status\":\"open\",\"reason\":\"not_delivered\",\"evidence\":[\"https://files.example/$3.jpg\"],\"openedBy\":\"buyer-$3\",\"amount\":$4,\"currency\":\"$5\",\"openedAt\":\"$TS\"}"
}
drefund_ev() { # TENANT EVID ORDER AMOUNT CURRENCY
    next_time
    event "$T_DRES" "$2" "$1" "{\"id\":\"dsp-$3\",\"orderId\":\"$3\",\"outcome\":\"refund_buyer\",\"notes\":\"no tracking\",\"resolvedBy\":\"admin-1\"}"
    expect "$O_DRESOLVED" "$1" marketplace-svc "$2" "$3" "{\"id\":\"dsp-$3\",\"orderId\":\"$3\",\"status\":\"resolved\",\"outcome\":\"refund_buyer\",\"notes\":\"no tracking\",\"resolvedBy\":\"admin-1\",\"resolvedAt\":\"$TS\",\"orderStatus\":\"cancelled\"}"
    expect "$O_CANCELLED" "$1" marketplace-svc "$2" "$3" "{\"id\":\"$3\",\"status\":\"cancelled\",\"reason\":\"dispute_refund\",\"refundStatus\":\"pending\",\"refundAmount\":$4,\"currency\":\"$5\",\"cancelledAt\":\"$TS\",\"disputeId\":\"dsp-$3\"}"
}

# ----------------------------------------------------------------- helpers

# wait_logs PATTERN COUNT [SECONDS]: COUNT matching lines over all daemon
# logs of this run.
wait_logs() {
    local pattern=$1 count=$2 secs=${3:-30} i n
    for i in $(seq 1 $((secs * 10))); do
        n=$(cat "${DAEMON_LOGS[@]}" 2>/dev/null | grep -cE "$pattern" || true)
        if [ "$n" -ge "$count" ]; then return 0; fi
        sleep 0.1
    done
    echo "timed out: $n of $count lines matching '$pattern'" >&2
    return 1
}

start_daemon() {
    local log="$ES_TMP/daemon.${#DAEMON_LOGS[@]}.log"
    DAEMON_LOGS+=("$log")
    es_start_daemon "$CONFIG" "$log"
}

# consume_all OUT: every record of the output topics, "key<TAB>value".
consume_all() {
    local out=$1 topic
    : >"$out"
    for topic in "${OUTPUTS[@]}"; do
        timeout 20 kcat -C -b "$BOOTSTRAP" -t "$topic" -o beginning -e -q \
            -f '%k\t%s\n' >>"$out" 2>/dev/null || true
    done
}

# compare EXPECTED_TSV ACTUAL MODE: normalises both sides (sorted keys) and
# prints the differences. MODE "exact": the multiset must match (so nothing
# twice); "at-least-once": every expected event present, and any repeat of
# an id byte-identical to its first copy.
compare() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys, uuid
ns = uuid.UUID("74b84ece-fe89-4ed5-b8eb-3509c6d152ae")
exp = []
for line in open(sys.argv[1]):
    typ, tenant, src, in_id, ts, order, data = line.rstrip("\n").split("\t")
    ev = {"specversion": "1.0",
          "id": str(uuid.uuid5(ns, "\n".join([tenant, src, in_id, typ]))),
          "type": typ, "source": "marketplace-svc", "time": ts,
          "datacontenttype": "application/json",
          "subject": "order:" + order, "tenantid": tenant,
          "data": json.loads(data), "_key": tenant}
    exp.append(json.dumps(ev, sort_keys=True))
act, raw = [], {}
for line in open(sys.argv[2]):
    key, value = line.rstrip("\n").split("\t", 1)
    ev = json.loads(value)
    ev["_key"] = key
    act.append(json.dumps(ev, sort_keys=True))
    if ev["id"] in raw and raw[ev["id"]] != value:
        print("NOT IDENTICAL: two different events with id", ev["id"])
        sys.exit(1)
    raw[ev["id"]] = value
missing = sorted(set(exp) - set(act))
extra = sorted(set(act) - set(exp))
for e in missing: print("MISSING", e)
for e in extra: print("UNEXPECTED", e)
if sys.argv[3] == "exact" and sorted(exp) != sorted(act):
    dups = len(act) - len(set(act))
    print("counts differ: expected %d, got %d (%d repeats)" % (len(exp), len(act), dups))
    sys.exit(1)
print("repeats:", len(act) - len(set(act)))
sys.exit(1 if missing or extra else 0)
EOF
}

# --------------------------------------------------------------- the run

es_start_broker
# Create the input topics before the group joins (records produced before
# the join are skipped: new groups start at the latest offset).
for t in "${INPUTS[@]}"; do
    printf 'warmup\n' >"$ES_TMP/warm"
    es_produce "$t" "$ES_TMP/warm"
done
STATE_DIR="$ES_TMP/state"
mkdir -p "$STATE_DIR"
topics_json=$(printf '"%s",' "${INPUTS[@]}")
CONFIG=$(es_config marketplace "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"group_id\": \"mkt-e2e\",
            \"properties\": {\"session.timeout.ms\": \"6000\",
                           \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$STATE_DIR\",
  \"dead_letter_topic\": \"$DLQ\",
  \"log\": {\"level\": \"debug\", \"format\": \"logfmt\"},
  \"retry\": {\"initial_backoff_ms\": 100, \"max_backoff_ms\": 400,
            \"max_attempts\": 0},
  \"pipeline\": {\"shutdown_timeout_ms\": 3000, \"commit_interval_ms\": 200},
  \"instances\": {\"orders\": {\"plugin\": \"marketplace\",
                             \"config\": {\"wait_timeout_ms\": 25000}}},
  \"routes\": [{\"name\": \"orders\", \"topics\": [${topics_json%,}],
              \"tenant\": [\"tenantid\"], \"destinations\": [\"orders\"]}]
}")
start_daemon
FIRST_LOG=${DAEMON_LOGS[0]}

es_log "lifecycles: quotes for four orders in three tenants"
quote_ev "$TA" ev-q-a1 A1 5000 USD && send "$T_QUOTE" "$TA" "$VAL" good
quote_ev "$TA" ev-q-a3 A3 2500 EUR && send "$T_QUOTE" "$TA" "$VAL" good
quote_ev "$TB" ev-q-b1 B1 1200 USD && send "$T_QUOTE" "$TB" "$VAL" good
quote_ev "$TC" ev-q-c1 C1 9900 USD && send "$T_QUOTE" "$TC" "$VAL" good
es_check "orders created" wait_logs 'msg="order (A1|A3|B1|C1): created' 4

es_log "out of order: the payment of A2 before its quote"
pay_ev "$TA" ev-p-a2 A2 7000 USD && send "$T_PAY" "$TA" "$VAL" good
es_check "early payment waits for its order" \
    wait_logs 'unknown order A2: .* may be early' 1
quote_ev "$TA" ev-q-a2 A2 7000 USD && send "$T_QUOTE" "$TA" "$VAL" good
es_check "early payment applied once the order exists" \
    wait_logs 'msg="order A2: paid' 1

es_log "payments, escrow releases, a cancellation, a dispute"
pay_ev "$TA" ev-p-a1 A1 5000 USD && send "$T_PAY" "$TA" "$VAL" good
PAY_A1=$VAL
pay_ev "$TA" ev-p-a3 A3 2500 EUR && send "$T_PAY" "$TA" "$VAL" good
pay_ev "$TC" ev-p-c1 C1 9900 USD && send "$T_PAY" "$TC" "$VAL" good
es_check "payments applied" wait_logs 'msg="order (A1|A3|C1): paid' 3
escrow_ev "$TA" ev-e-a1 A1 4500 USD && send "$T_ESCROW" "$TA" "$VAL" good
ESC_A1=$VAL
escrow_ev "$TA" ev-e-a2 A2 7000 USD && send "$T_ESCROW" "$TA" "$VAL" good
cancel_ev "$TB" ev-c-b1 B1 not_required 0 USD && send "$T_CANCEL" "$TB" "$VAL" good
dopen_ev "$TC" ev-d-c1 C1 9900 USD && send "$T_DOPEN" "$TC" "$VAL" good
es_check "completed, cancelled, disputed" \
    wait_logs 'msg="order (A1: completed|A2: completed|B1: cancelled|C1: disputed)' 4
drefund_ev "$TC" ev-r-c1 C1 9900 USD && send "$T_DRES" "$TC" "$VAL" good
es_check "dispute resolved with a refund" wait_logs 'msg="order C1: cancelled' 1

es_log "duplicates, illegal transitions, an invalid amount, an unknown order"
QUOTE_A1=$(grep -F '"id":"ev-q-a1"' "$SENT" | cut -f3)
send "$T_QUOTE" "$TA" "$QUOTE_A1"
send "$T_PAY" "$TA" "$PAY_A1"
send "$T_ESCROW" "$TA" "$ESC_A1"
es_check "duplicates are no-ops" \
    wait_logs 'event ev-[a-z]-[abc][0-9] already processed: no-op' 3
next_time
event "$T_PAY" ev-p-b1-late "$TB" '{"id":"pay-B1","orderId":"B1","amount":1200,"currency":"USD"}'
ILLEGAL_PAY=$VAL
send "$T_PAY" "$TB" "$VAL"
next_time
event "$T_ESCROW" ev-e-b1 "$TB" '{"id":"esc-B1","orderId":"B1","amount":1200,"currency":"USD"}'
ILLEGAL_ESC_B=$VAL
send "$T_ESCROW" "$TB" "$VAL"
next_time
event "$T_ESCROW" ev-e-c1 "$TC" '{"id":"esc-C1","orderId":"C1","amount":9900,"currency":"USD"}'
ILLEGAL_ESC_C=$VAL
send "$T_ESCROW" "$TC" "$VAL"
next_time
event "$T_ESCROW" ev-e-frac "$TA" '{"id":"esc-A3","orderId":"A3","amount":2499.5,"currency":"EUR"}'
FRACTION=$VAL
send "$T_ESCROW" "$TA" "$VAL"
# Two amounts: refused before the order is read (a Lua filter would see the
# last, a lookup the first).
next_time
event "$T_ESCROW" ev-e-twice "$TA" '{"id":"esc-A3","orderId":"A3","amount":2499,"amount":1,"currency":"EUR"}'
TWICE=$VAL
send "$T_ESCROW" "$TA" "$VAL"
# An escrow release for an order nobody created: retried (across the restart
# below: its first-seen time is durable), then dead-lettered.
next_time
event "$T_ESCROW" ev-e-ghost "$TA" '{"id":"esc-ghost","orderId":"GHOST","amount":100,"currency":"USD"}'
GHOST=$VAL
send "$T_ESCROW" "$TA" "$VAL"
es_check "illegal and invalid events dead-lettered" \
    wait_logs 'msg="dead-lettering topic=' 5

# burst NAME: three orders per tenant (NAME-a1 .. NAME-c3). Quotes of the
# *1 orders go to Q1, the others to Q23; payments and escrows are written
# *3, *2, *1 per tenant, so the *1 ones (which can complete) sit behind ones
# that wait for their quote: their offsets cannot be committed.
burst() {
    local t n o
    BURST_Q1="$ES_TMP/$1.q1" BURST_Q23="$ES_TMP/$1.q23"
    BURST_P="$ES_TMP/$1.p" BURST_E="$ES_TMP/$1.e"
    : >"$BURST_Q1"
    : >"$BURST_Q23"
    : >"$BURST_P"
    : >"$BURST_E"
    for t in "$TA" "$TB" "$TC"; do
        for n in 3 2 1; do
            o="$1-${t: -1}$n"
            quote_ev "$t" "ev-q-$o" "$o" $((1000 * n)) USD
            if [ $n = 1 ]; then
                printf '%s\t%s\n' "$t" "$VAL" >>"$BURST_Q1"
            else
                printf '%s\t%s\n' "$t" "$VAL" >>"$BURST_Q23"
            fi
            pay_ev "$t" "ev-p-$o" "$o" $((1000 * n)) USD
            printf '%s\t%s\n' "$t" "$VAL" >>"$BURST_P"
            escrow_ev "$t" "ev-e-$o" "$o" $((1000 * n - 100)) USD
            printf '%s\t%s\n' "$t" "$VAL" >>"$BURST_E"
        done
    done
}

# run_burst NAME: produces a burst up to the point where the *1 orders are
# complete and the others wait.
run_burst() {
    burst "$1"
    es_produce "$T_QUOTE" "$BURST_Q1"
    es_check "$1: first orders created" \
        wait_logs "msg=\"order $1-[abc]1: created" 3
    es_produce "$T_PAY" "$BURST_P"
    es_produce "$T_ESCROW" "$BURST_E"
    es_check "$1: first orders completed" \
        wait_logs "msg=\"order $1-[abc]1: completed" 3
    es_check "$1: the others wait for their quotes" \
        wait_logs "unknown order $1-[abc][23]: $T_ESCROW event .* may be early" 6
}

es_log "clean restart mid-stream"
run_burst R
rc=0
es_stop_daemon TERM || rc=$?
es_eq "daemon stopped cleanly" 0 "$rc"
start_daemon
es_produce "$T_QUOTE" "$BURST_Q23"
es_check "R: all orders completed after the restart" \
    wait_logs 'msg="order R-[abc][23]: completed' 6 60
es_check "R: the uncommitted tail was redelivered and skipped" \
    wait_logs 'event ev-[pe]-R-[abc]1 already processed: no-op' 6
# Replays of every good input of the first phase, at new offsets.
for t in "${INPUTS[@]}"; do
    awk -F'\t' -v t="$t" '$1 == t { print $2 "\t" $3 }' "$SENT" >"$ES_TMP/replay"
    if [ -s "$ES_TMP/replay" ]; then es_produce "$t" "$ES_TMP/replay"; fi
done
replays=$(wc -l <"$SENT")
es_check "replayed inputs are no-ops after the restart" \
    wait_logs 'event ev-[a-z]-[abc][0-9] already processed: no-op' $((3 + replays)) 30

es_log "dead letters (the unknown order gives up 25 s after it was first seen)"
DLQ_OUT="$ES_TMP/dlq.out"
for i in $(seq 1 60); do
    timeout 10 kcat -C -b "$BOOTSTRAP" -t "$DLQ" -o beginning -e -q \
        -f '%h\t%s\n' >"$DLQ_OUT" 2>/dev/null || true
    [ "$(es_count "$DLQ_OUT")" -ge 6 ] && break
    sleep 0.5
done
es_eq "six dead letters" 6 "$(es_count "$DLQ_OUT")"
# dlq_has VALUE PATTERN...: the dead letter of VALUE carries every pattern
# (in its headers) and the original value untouched.
dlq_has() {
    local value=$1 line p
    shift
    line=$(grep -F -- "$value" "$DLQ_OUT" | head -1)
    [ -n "$line" ] || return 1
    for p in "$@"; do grep -qF -- "$p" <<<"$line" || return 1; done
    [ "${line#*$'\t'}" = "$value" ]
}
es_check "payment on a cancelled order: order, state and event named" \
    dlq_has "$ILLEGAL_PAY" "es_reason=illegal transition: order B1 is cancelled" \
    "$T_PAY event ev-p-b1-late" "es_route=orders" "es_destination=orders" \
    "es_plugin=marketplace" "es_topic=$T_PAY"
es_check "escrow released on a cancelled order dead-lettered" \
    dlq_has "$ILLEGAL_ESC_B" "illegal transition: order B1 is cancelled, $T_ESCROW event ev-e-b1"
es_check "escrow released on a refunded order dead-lettered" \
    dlq_has "$ILLEGAL_ESC_C" "illegal transition: order C1 is cancelled, $T_ESCROW event ev-e-c1"
es_check "fractional amount dead-lettered" \
    dlq_has "$FRACTION" "data.amount must be an integer number of minor units" \
    "got 2499.5"
es_check "a repeated key in data dead-lettered, named" \
    dlq_has "$TWICE" "es_reason=$T_ESCROW event ev-e-twice: data.amount is given twice in its object"
es_check "unknown order dead-lettered after waiting across the restart" \
    dlq_has "$GHOST" "es_reason=unknown order GHOST: $T_ESCROW event ev-e-ghost waited"
rc=0
es_stop_daemon TERM || rc=$?
es_eq "daemon stopped cleanly again" 0 "$rc"

es_log "comparing every emitted event"
ACTUAL="$ES_TMP/actual.tsv"
consume_all "$ACTUAL"
es_log "$(es_count "$ACTUAL") events emitted, $(es_count "$EXPECTED") expected"
es_check "emitted events match, each exactly once" \
    compare "$EXPECTED" "$ACTUAL" exact

es_log "crash (SIGKILL) mid-stream"
start_daemon
run_burst K
es_stop_daemon KILL || true
start_daemon # joins once the killed member's session (6 s) has expired
es_produce "$T_QUOTE" "$BURST_Q23"
es_check "K: all orders completed after the crash" \
    wait_logs 'msg="order K-[abc][23]: completed' 6 90
es_check "K: the crashed incarnation's tail was re-published" \
    wait_logs 'event ev-e-K-[abc]1 redelivered: republished' 3
rc=0
es_stop_daemon TERM || rc=$?
es_eq "daemon stopped cleanly after the crash" 0 "$rc"
consume_all "$ACTUAL"
es_log "$(es_count "$ACTUAL") events emitted, $(es_count "$EXPECTED") expected"
es_check "nothing lost after a crash; repeats are byte-identical" \
    compare "$EXPECTED" "$ACTUAL" at-least-once

es_check "no sanitizer reports" \
    bash -c '! grep -hE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$@"' _ "${DAEMON_LOGS[@]}"
es_finish
