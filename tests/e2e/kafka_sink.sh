#!/usr/bin/env bash
# End to end: source es-broker -> eventstreamd -> kafka sink -> a second
# es-broker (the "customer" cluster), consumed back with kcat and compared.
# 100k events in structured mode with lz4, a binary-mode route with gzip and
# kept headers, a templated topic, acks withheld by a frozen target (nothing
# lost, redelivered after restart) and KAFKA_ENABLED=false.
. "$(dirname "$0")/lib.sh"

GEN="$SRC_DIR/tests/e2e/gen_events.py"
BULK=eventzr.marketplace.listing.created.v1
BIN=eventzr.blockchain.ticket.minted.v1
N_BULK=${N_BULK:-100000}

es_start_broker -t "$BULK:32" -t "$BIN:2" -t eventstream.dlq:1
SRC=$BOOTSTRAP
# The target keeps a bounded log per partition: spread the bulk topic.
es_start_broker -t fwd.bulk:32 -t "fwd.$BIN:2"
DST=$BOOTSTRAP

config() { # NAME [BIN_TARGET]
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$SRC\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state\",
  \"dead_letter_topic\": \"eventstream.dlq\",
  \"instances\": {
    \"bulk\": {\"plugin\": \"kafka\", \"config\": {\"brokers\": \"$DST\",
       \"topic\": \"fwd.bulk\", \"compression\": \"lz4\",
       \"properties\": {\"linger.ms\": 10}}},
    \"bin\": {\"plugin\": \"kafka\", \"config\": {\"brokers\": \"${2:-$DST}\",
       \"topic\": \"fwd.{topic}\", \"compression\": \"gzip\",
       \"content_mode\": \"binary\", \"keep_headers\": true,
       \"close_timeout_ms\": 1000}}
  },
  \"routes\": [
    {\"name\": \"bulk\", \"topics\": [\"$BULK\"], \"tenant\": [\"tenantid\"],
     \"destinations\": [\"bulk\"]},
    {\"name\": \"bin\", \"topics\": [\"$BIN\"], \"tenant\": [\"data.tenantId\"],
     \"destinations\": [\"bin\"]}
  ]
}"
}

CONFIG=$(config main)
es_check "config with kafka sinks checks OK" "$ES_BIN" --check-config "$CONFIG"
BAD=$(es_config bad "{\"kafka\": {\"brokers\": \"x\"}, \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"instances\": {\"k\": {\"plugin\": \"kafka\", \"config\": {\"brokers\": \"x\",
     \"topic\": \"t\", \"compression\": \"brotli\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"t\"], \"destinations\": [\"k\"]}]}")
msg=$("$ES_BIN" --check-config "$BAD" 2>&1 || true)
es_check "bad compression names the key" grep -q "compression: must be one of none, gzip, lz4, snappy, zstd" <<<"$msg"

es_start_daemon "$CONFIG"

# --- 100k events, structured, lz4, key = tenant
# gen_events alternates marketplace and blockchain shapes: the marketplace
# ones (with a tenantid attribute) go to the bulk topic, the others to the
# binary-mode route.
python3 "$GEN" $((2 * N_BULK)) --keyed --tenants 50 >"$ES_TMP/all.txt"
grep -F '"type":"eventzr.marketplace' "$ES_TMP/all.txt" >"$ES_TMP/bulk.txt"
grep -F '"type":"eventzr.blockchain' "$ES_TMP/all.txt" | cut -f2 | sed -n '1,2300p' >"$ES_TMP/chain.txt"
N=$(es_count "$ES_TMP/bulk.txt")
timeout 120 kcat -C -b "$DST" -t fwd.bulk -o beginning -c "$N" -q \
    -f '%k\t%h\t%s\n' >"$ES_TMP/bulk.out" 2>/dev/null &
CONSUMER=$!
es_produce "$BULK" "$ES_TMP/bulk.txt" "$SRC"
wait $CONSUMER || true
es_eq "bulk: every event re-published" "$N" "$(es_count "$ES_TMP/bulk.out")"
es_eq "bulk: each exactly once" "$N" "$(cut -f3 "$ES_TMP/bulk.out" | python3 -c '
import json,sys
print(len({json.loads(l)["id"] for l in sys.stdin}))')"
es_check "bulk: values byte-identical to the source" \
    cmp -s <(cut -f2 "$ES_TMP/bulk.txt" | sort) <(cut -f3 "$ES_TMP/bulk.out" | sort)
es_eq "bulk: key is the tenant, content-type header" 0 "$(python3 -c '
import json,sys
bad = 0
for l in open(sys.argv[1]):
    k, h, v = l.rstrip("\n").split("\t", 2)
    if k != json.loads(v)["tenantid"] or h != "content-type=application/cloudevents+json":
        bad += 1
print(bad if bad or sys.argv[2] != "0" else -1)' "$ES_TMP/bulk.out" "$(es_count "$ES_TMP/bulk.out")")"

# --- binary mode, gzip, kept headers, templated topic fwd.{topic}
head -2000 "$ES_TMP/chain.txt" >"$ES_TMP/bin.txt"
kcat -P -b "$SRC" -t "$BIN" -H "traceparent=00-4bf92f3577b34da6-00f067aa0ba902b7-01" \
    -H "content-type=text/stale" -z none <"$ES_TMP/bin.txt"
timeout 60 kcat -C -b "$DST" -t "fwd.$BIN" -o beginning -c 2000 -q \
    -f '%k\t%h\t%s\n' >"$ES_TMP/bin.out" 2>/dev/null || true
es_eq "binary: every event arrived" 2000 "$(es_count "$ES_TMP/bin.out")"
es_eq "binary: ce_ headers, content-type, data as value, original headers" 0 "$(python3 -c '
import json,sys
src = {}
for l in open(sys.argv[1]):
    e = json.loads(l); src[e["id"]] = e
bad = 0; seen = set()
for l in open(sys.argv[2]):
    k, h, v = l.rstrip("\n").split("\t", 2)
    hdr = dict(x.split("=", 1) for x in h.split(","))
    e = src.get(hdr.get("ce_id"))
    ok = e is not None and e["id"] not in seen
    if ok:
        seen.add(e["id"])
        for a, val in e.items():
            if a in ("data", "datacontenttype"): continue
            ok = ok and hdr.get("ce_" + a) == str(val)
        ok = ok and hdr.get("content-type") == e["datacontenttype"]
        ok = ok and json.loads(v) == e["data"]
        ok = ok and k == e["data"]["tenantId"]
        ok = ok and hdr.get("traceparent") == "00-4bf92f3577b34da6-00f067aa0ba902b7-01"
        ok = ok and h.count("content-type=") == 1
    bad += 0 if ok else 1
print(bad if seen else -1)' "$ES_TMP/bin.txt" "$ES_TMP/bin.out")"

# ids_present WANT_FILE: how many of WANT_FILE's ids are on fwd.$BIN now.
ids_present() {
    timeout 30 kcat -C -b "$DST" -t "fwd.$BIN" -o beginning -e -q -f '%h\n' \
        >"$ES_TMP/fwd.bin.now" 2>/dev/null || true
    python3 -c '
import json,sys
want = {json.loads(l)["id"] for l in open(sys.argv[1])}
got = set()
for l in open(sys.argv[2]):
    hdr = dict(x.split("=", 1) for x in l.strip().split(",") if "=" in x)
    got.add(hdr.get("ce_id"))
print(len(want & got))' "$1" "$ES_TMP/fwd.bin.now"
}

# --- target unreachable: no ack, so no commit; after a restart with the
# target reachable the events are redelivered and all arrive.
rc=0; es_stop_daemon TERM || rc=$?
es_eq "first daemon exits 0" 0 "$rc"
DOWN=$(config down 127.0.0.1:9)
es_start_daemon "$DOWN"
sed -n '2001,2200p' "$ES_TMP/chain.txt" >"$ES_TMP/frozen.txt"
es_produce "$BIN" "$ES_TMP/frozen.txt" "$SRC"
sleep 3
rc=0; es_stop_daemon TERM || rc=$?
es_eq "stop with acks outstanding exits 0" 0 "$rc"
es_check "unacked events are not committed" grep -q "not committed" "$ES_DAEMON_LOG"
es_start_daemon "$CONFIG"
n=0
for i in $(seq 1 30); do
    n=$(ids_present "$ES_TMP/frozen.txt")
    [ "$n" -ge 200 ] && break
    sleep 1
done
es_eq "unreachable target: all 200 unacked events arrive after restart" 200 "$n"
es_stop_daemon TERM || true

# --- KAFKA_ENABLED=false: publishes are counted, logged-once no-ops
sed -n '2201,2300p' "$ES_TMP/chain.txt" >"$ES_TMP/off.txt"
export KAFKA_ENABLED=false
es_start_daemon "$CONFIG"
unset KAFKA_ENABLED
es_produce "$BIN" "$ES_TMP/off.txt" "$SRC"
es_check "KAFKA_ENABLED=false logged" es_wait_log "KAFKA_ENABLED=false: kafka publishes are skipped" 30
sleep 2
es_eq "KAFKA_ENABLED=false logged once per instance" 1 \
    "$(grep -c 'KAFKA_ENABLED=false: kafka publishes are skipped' "$ES_DAEMON_LOG")"
rc=0; es_stop_daemon TERM || rc=$?
es_eq "KAFKA_ENABLED=false daemon stops cleanly" 0 "$rc"
es_eq "KAFKA_ENABLED=false published nothing" 0 "$(ids_present "$ES_TMP/off.txt")"

es_finish
