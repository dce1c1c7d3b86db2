#!/usr/bin/env bash
# End to end through the real daemon, the real file sink and a real Kafka
# protocol peer (librdkafka's mock cluster): delivery, dead letters with
# reasons, config errors, and nothing lost across graceful and hard
# restarts.
. "$(dirname "$0")/lib.sh"

TOPIC=eventzr.marketplace.listing.created.v1
OUT="$ES_TMP/out.jsonl"
GEN="$SRC_DIR/tests/e2e/gen_events.py"

es_start_broker -t "$TOPIC:4" -t eventstream.dlq:1

CONFIG=$(es_config main "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state\",
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [{\"name\": \"listings\", \"topics\": [\"$TOPIC\"], \"destinations\": [\"out\"]}]
}")

# --- config errors stop startup and name the file, the key and the problem
BAD=$(es_config bad '{"kafka": {"brokers": "x"}, "routes": [{"name": "r", "topics": ["t"], "destinations": ["missing"]}]}')
msg=$("$ES_BIN" --check-config "$BAD" 2>&1 || true)
es_check "check-config names file and key" grep -q "bad.json: routes\[0\].destinations\[0\]: instance \"missing\" is not defined" <<<"$msg"
NOPLUGIN=$(es_config noplugin "{\"kafka\": {\"brokers\": \"x\"}, \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"instances\": {\"o\": {\"plugin\": \"nosuch\"}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"t\"], \"destinations\": [\"o\"]}]}")
rc=0; msg=$("$ES_BIN" -c "$NOPLUGIN" 2>&1) || rc=$?
es_check "missing plugin is a startup error" test "$rc" -ne 0
es_check "missing plugin message" grep -q 'instances.o.plugin: no plugin named \\"nosuch\\"' <<<"$msg"
BADPLUGCONF=$(es_config badplug "{\"kafka\": {\"brokers\": \"x\"}, \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"instances\": {\"o\": {\"plugin\": \"file\", \"config\": {\"paht\": \"/tmp/x\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"t\"], \"destinations\": [\"o\"]}]}")
msg=$("$ES_BIN" --check-config "$BADPLUGCONF" 2>&1 || true)
es_check "plugin config error names the key" grep -q "badplug.json: instances.o.config: paht: unknown key" <<<"$msg"
TWICE=$(es_config twice "{\"kafka\": {\"brokers\": \"x\"}, \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"instances\": {\"o\": {\"plugin\": \"file\", \"config\": {\"path\": \"/tmp/a\"}},
                \"o\": {\"plugin\": \"file\", \"config\": {\"path\": \"/tmp/b\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"t\"], \"destinations\": [\"o\"]}]}")
rc=0; msg=$("$ES_BIN" -c "$TWICE" 2>&1) || rc=$?
es_check "a key given twice is a startup error" test "$rc" -ne 0
es_check "a key given twice: file and key named" grep -q "twice.json: instances.o: is given twice in its object" <<<"$msg"
# A librdkafka property it does not know: --check-config said OK, startup
# stopped with no file or key named.
BADPROP=$(es_config badprop "{\"kafka\": {\"brokers\": \"x\", \"properties\": {\"sesion.timeout.ms\": \"6000\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"instances\": {\"o\": {\"plugin\": \"file\", \"config\": {\"path\": \"/tmp/a\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"t\"], \"destinations\": [\"o\"]}]}")
for mode in --check-config -c; do
    rc=0; msg=$("$ES_BIN" $mode "$BADPROP" 2>&1) || rc=$?
    es_check "unknown kafka property ($mode): refused, file and key named" \
        test "$rc" -ne 0 -a -n "$(grep -F 'badprop.json: kafka.properties.sesion.timeout.ms: No such configuration property' <<<"$msg")"
done
# A CA file librdkafka reads only when a client is made.
BADCA=$(sed 's|"sesion.timeout.ms": "6000"|"security.protocol": "ssl", "ssl.ca.location": "/nonexistent/ca.pem"|' "$BADPROP" >"$ES_TMP/badca.json"; echo "$ES_TMP/badca.json")
for mode in --check-config -c; do
    rc=0; msg=$(timeout 20 "$ES_BIN" $mode "$BADCA" 2>&1) || rc=$?
    es_check "unreadable ssl.ca.location ($mode): refused, file and key named" \
        test "$rc" -ne 0 -a -n "$(grep -F 'badca.json: kafka.properties.ssl.ca.location: /nonexistent/ca.pem: No such file or directory' <<<"$msg")"
done
es_check "good config checks OK" "$ES_BIN" --check-config "$CONFIG"

# --- 10,000 seed-shaped events plus malformed ones
es_start_daemon "$CONFIG"
python3 "$GEN" 10000 --keyed >"$ES_TMP/batch1.txt"
es_produce "$TOPIC" "$ES_TMP/batch1.txt"
{
    printf 'k1\t{"specversion":"1.0","source":"s","type":"t"}\n'
    printf 'k2\t{not json\n'
    printf 'k3\t{"specversion":"0.3","id":"x","source":"s","type":"t"}\n'
    # JSON that cJSON would take, and readers downstream would not
    printf 'k4\t{"specversion":"1.0","id":"4","source":"s","type":"t","data":{"n":012}}\n'
    printf 'k5\t{"specversion":"1.0","id":"5","source":"s","type":"t","source":"s2"}\n'
    printf 'k6\t{"specversion":"1.0","id":"6","source":"s","type":"a\001b"}\n'
    printf 'k7\t{"specversion":"1.0","id":"7","source":"s","type":"t","data_base64":"Q=JD"}\n'
    # JSON, but a string the host's tree would cut at the NUL
    printf 'k8\t{"specversion":"1.0","id":"8","source":"s","type":"t","data":{"n":"a\\u0000b"}}\n'
} >"$ES_TMP/bad.txt"
es_produce "$TOPIC" "$ES_TMP/bad.txt"
es_wait_lines "$OUT" 10000 60 || true
es_eq "10,000 events delivered to the file sink" 10000 "$(es_count "$OUT")"
es_eq "each exactly once" 10000 "$(python3 -c '
import json,sys
print(len({json.loads(l)["id"] for l in open(sys.argv[1])}))' "$OUT")"
es_check "events are byte-identical to what was produced" \
    cmp -s <(cut -f2 "$ES_TMP/batch1.txt" | sort) <(sort "$OUT")

es_consume eventstream.dlq 8 "$ES_TMP/dlq.txt" "$BOOTSTRAP" '%k|%h|%s\n'
es_eq "8 malformed events dead-lettered" 8 "$(es_count "$ES_TMP/dlq.txt")"
es_check "dlq: missing id reason" grep -q '^k1|.*es_reason=missing required attribute "id"' "$ES_TMP/dlq.txt"
es_check "dlq: invalid JSON reason" grep -q '^k2|es_reason=invalid JSON at byte' "$ES_TMP/dlq.txt"
es_check "dlq: specversion reason" grep -q '^k3|es_reason=unsupported specversion' "$ES_TMP/dlq.txt"
es_check "dlq: leading-zero number reason" grep -q '^k4|es_reason=invalid JSON at byte 66: "012" is not a JSON number' "$ES_TMP/dlq.txt"
es_check "dlq: repeated attribute reason" grep -q '^k5|es_reason=attribute "source" appears twice' "$ES_TMP/dlq.txt"
es_check "dlq: raw control character reason" grep -q '^k6|es_reason=invalid JSON at byte 52: control character 0x01 written raw in a string' "$ES_TMP/dlq.txt"
es_check "dlq: data_base64 reason" grep -q "^k7|es_reason=\"data_base64\" is not base64: character 2 follows the '=' padding" "$ES_TMP/dlq.txt"
es_check "dlq: U+0000 reason" grep -q '^k8|es_reason=unsupported JSON at byte 68: \\u0000 (U+0000) in a string' "$ES_TMP/dlq.txt"
es_check "dlq: U+0000 event kept as it came" grep -q '|{"specversion":"1.0","id":"8","source":"s","type":"t","data":{"n":"a\\u0000b"}}$' "$ES_TMP/dlq.txt"
es_check "dlq: original value untouched" grep -q '|{not json$' "$ES_TMP/dlq.txt"
es_check "dlq: origin headers" grep -q "es_plugin=decode,es_topic=$TOPIC,es_partition=[0-3],es_offset=[0-9]" "$ES_TMP/dlq.txt"

# --- graceful stop mid-stream, restart: nothing lost, nothing twice
python3 "$GEN" 20000 --start 10000 --keyed >"$ES_TMP/batch2.txt"
es_produce "$TOPIC" "$ES_TMP/batch2.txt" &
PRODUCER=$!
sleep 0.3
rc=0; es_stop_daemon TERM || rc=$?
es_eq "SIGTERM exits 0" 0 "$rc"
wait $PRODUCER
es_check "shutdown commits and leaves" grep -q 'msg="stopped"' "$ES_DAEMON_LOG"
es_start_daemon "$CONFIG"
es_wait_lines "$OUT" 30000 90 || true
es_eq "graceful restart: all 30,000 ids present" 30000 "$(python3 -c '
import json,sys
print(len({json.loads(l)["id"] for l in open(sys.argv[1])}))' "$OUT")"
es_eq "graceful restart: no duplicates" 30000 "$(es_count "$OUT")"

# --- SIGKILL mid-stream: at-least-once, nothing lost (duplicates allowed)
python3 "$GEN" 20000 --start 30000 --keyed >"$ES_TMP/batch3.txt"
es_produce "$TOPIC" "$ES_TMP/batch3.txt" &
PRODUCER=$!
sleep 0.3
es_stop_daemon KILL || true
wait $PRODUCER
es_start_daemon "$CONFIG"
for i in $(seq 1 120); do
    n=$(python3 -c '
import json,sys
print(len({json.loads(l)["id"] for l in open(sys.argv[1])}))' "$OUT")
    [ "$n" -ge 50000 ] && break
    sleep 0.5
done
es_eq "hard kill: all 50,000 ids present" 50000 "$n"

# --- the output rotated (logrotate's default: moved away, a new file
# wanted at the path): the sink opens the path again
mv "$OUT" "$OUT.1"
python3 "$GEN" 500 --start 50000 --keyed >"$ES_TMP/batch4.txt"
es_produce "$TOPIC" "$ES_TMP/batch4.txt"
es_wait_lines "$OUT" 500 30 || true
es_check "rotation: the file sink reopened its path" \
    grep -q "file sink: $OUT reopened (rotated)" "$ES_DAEMON_LOG"
es_check "rotation: the new file holds exactly the events produced after it" \
    cmp -s <(cut -f2 "$ES_TMP/batch4.txt" | sort) <(sort "$OUT")
rc=0; es_stop_daemon TERM || rc=$?
es_eq "final SIGTERM exits 0" 0 "$rc"

es_finish
