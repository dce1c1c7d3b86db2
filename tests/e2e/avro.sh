#!/usr/bin/env bash
# End-to-end test of Avro input: values encoded by python3-avro (Confluent
# wire format with a loopback schema-registry stand-in, plain Avro with a
# local .avsc) produced with kcat through eventstreamd to the file sink;
# bad values in the dead-letter topic with their reasons; a registry outage
# is retried, not dead-lettered.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
FIX="$ES_TMP/fixtures"
$PY "$SRC_DIR/tests/unit/avro_fixtures.py" --e2e "$FIX" >/dev/null
E2E="$FIX/e2e"

# Registry stand-in (basic auth) on a port we can come back to.
start_registry() { # [PORT]
    local out="$ES_TMP/registry.$RANDOM.out"
    $PY "$SRC_DIR/tests/unit/avro_registry.py" "$FIX/registry" \
        --auth es:s3cret --port "${1:-0}" >"$out" 2>&1 &
    REG_PID=$!
    ES_PIDS+=("$REG_PID")
    local i
    for i in $(seq 1 100); do
        if grep -q '^port=' "$out"; then
            REG_PORT=$(sed -n 's/^port=//p' "$out")
            return 0
        fi
        sleep 0.05
    done
    echo "registry stand-in did not start: $(cat "$out")" >&2
    return 1
}

es_start_broker
start_registry
OUT="$ES_TMP/out.jsonl"
API_PORT=$(es_free_port)
CONFIG=$(es_config avro "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"group_id\": \"avro-e2e\",
            \"properties\": {\"session.timeout.ms\": \"6000\",
                             \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state\",
  \"dead_letter_topic\": \"e2e.avro.dlq\",
  \"api\": {\"listen\": \"127.0.0.1:$API_PORT\"},
  \"retry\": {\"initial_backoff_ms\": 100, \"max_backoff_ms\": 500,
            \"max_attempts\": 0},
  \"schema_registry\": {\"url\": \"http://127.0.0.1:$REG_PORT\",
                      \"username\": \"es\", \"password\": \"s3cret\",
                      \"timeout_ms\": 2000},
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [
    {\"name\": \"orders\", \"topics\": [\"e2e.avro.orders\"], \"format\": \"avro\",
     \"destinations\": [\"out\"]},
    {\"name\": \"iot\", \"topics\": [\"e2e.avro.iot\"], \"format\": \"avro\",
     \"avro_schemas\": {\"e2e.avro.iot\": \"$FIX/local/reading.avsc\"},
     \"destinations\": [\"out\"]},
    {\"name\": \"plain-json\", \"topics\": [\"e2e.avro.json\"],
     \"destinations\": [\"out\"]}
  ]
}")

# Config errors name the key.
bad_cfg=$(sed 's/"format": "avro",/"format": "avrox",/' "$CONFIG" >"$ES_TMP/bad.json"; \
    "$ES_BIN" --check-config "$ES_TMP/bad.json" 2>&1 || true)
es_check "bad format is a config error naming the key" \
    grep -q 'routes\[0\].format: must be "json" or "avro"' <<<"$bad_cfg"
bad_cfg=$(sed 's/"timeout_ms": 2000/"timeout_msx": 2000/' "$CONFIG" >"$ES_TMP/bad.json"; \
    "$ES_BIN" --check-config "$ES_TMP/bad.json" 2>&1 || true)
es_check "unknown schema_registry key is an error naming it" \
    grep -q 'schema_registry.timeout_msx: unknown key' <<<"$bad_cfg"
# A topic is decoded once for all routes: formats must agree.
bad_cfg=$(sed 's/"topics": \["e2e.avro.json"\]/"topics": ["e2e.avro.orders"]/' "$CONFIG" >"$ES_TMP/bad.json"; \
    "$ES_BIN" --check-config "$ES_TMP/bad.json" 2>&1 || true)
es_check "one topic with two formats is a config error" \
    grep -q 'routes\[2\].format: topic "e2e.avro.orders" is json here but avro in route "orders"' <<<"$bad_cfg"
bad_cfg=$(sed 's|reading.avsc|missing.avsc|' "$CONFIG" >"$ES_TMP/bad.json"; \
    "$ES_BIN" --check-config "$ES_TMP/bad.json" 2>&1 || true)
es_check "a missing local .avsc is a config error naming the topic" \
    grep -q 'routes\[1\].avro_schemas.e2e.avro.iot: .*missing.avsc: No such file' <<<"$bad_cfg"
es_check "the good config passes --check-config" \
    "$ES_BIN" --check-config "$CONFIG"

es_start_daemon "$CONFIG"

# Good events: 5 CloudEvent records (wire format, schema id 2), one plain
# record in binary mode (ce_ headers), plain and wire Avro on the local-
# schema topic (binary mode too), and one JSON event on a JSON route of the
# same daemon.
kcat -P -b "$BOOTSTRAP" -t e2e.avro.orders -z none "$E2E"/orders_{1,2,3,4,5}.bin
kcat -P -b "$BOOTSTRAP" -t e2e.avro.orders -z none \
    -H ce_specversion=1.0 -H ce_id=hdr-e2e -H ce_source=/shop \
    -H ce_type=com.example.item -H ce_tenantid=t-9 "$E2E/binary_mode.bin"
kcat -P -b "$BOOTSTRAP" -t e2e.avro.iot -z none \
    -H ce_specversion=1.0 -H ce_id=iot-1 -H ce_source=/iot -H ce_type=reading \
    "$E2E/iot_plain.bin" "$E2E/iot_wire.bin"
printf '%s\n' '{"specversion":"1.0","id":"json-1","source":"/j","type":"t","data":{"n":1}}' \
    >"$ES_TMP/json.txt"
es_produce e2e.avro.json "$ES_TMP/json.txt"
# Bad values, each with its reason.
bad_files=()
while IFS=$'\t' read -r name _; do bad_files+=("$E2E/$name.bin"); done <"$E2E/bad.tsv"
kcat -P -b "$BOOTSTRAP" -t e2e.avro.orders -z none "${bad_files[@]}"

es_check "9 good events reach the file sink" es_wait_lines "$OUT" 9 60
for n in 1 2 3 4 5; do
    es_eq "avro-$n decoded as a CloudEvent" "99.95 S1 t-42" \
        "$(jq -r "select(.id==\"avro-$n\") | \"\(.data.amount) \(.data.lines[0].sku) \(.tenantid)\"" "$OUT")"
done
es_eq "no null subject in the event" "false" \
    "$(jq -r 'select(.id=="avro-1") | has("subject")' "$OUT")"
es_eq "binary mode: attributes from ce_ headers, record as data" \
    "com.example.item t-9 bin-1 4 application/json" \
    "$(jq -r 'select(.id=="hdr-e2e") | "\(.type) \(.tenantid) \(.data.sku) \(.data.qty) \(.datacontenttype)"' "$OUT")"
es_eq "local .avsc: plain Avro (leading 0x00) and wire format both decode" \
    "plain wire" \
    "$(jq -r 'select(.data.sensor) | .data.sensor' "$OUT" | sort | xargs)"
es_eq "JSON topics still decode as before" "1" \
    "$(jq -r 'select(.id=="json-1") | .data.n' "$OUT")"

DLQ="$ES_TMP/dlq.txt"
es_consume e2e.avro.dlq 5 "$DLQ" "$BOOTSTRAP" '%h\n'
es_eq "5 bad values dead-lettered" 5 "$(es_count "$DLQ")"
while IFS=$'\t' read -r name reason; do
    es_check "dead letter for $name says \"$reason\"" grep -qF "es_reason=$reason" "$DLQ"
done <"$E2E/bad.tsv"
es_check "dead letters name the avro decoder" grep -q 'es_plugin=avro' "$DLQ"
es_check "dead letters keep the original topic" grep -q 'es_topic=e2e.avro.orders' "$DLQ"

# The admin API lists the schemas in use per topic.
SCHEMAS=$(curl -sf "http://127.0.0.1:$API_PORT/schemas" || echo '{}')
es_eq "admin API: registry schema in use on the orders topic" \
    "registry 2 com.eventzr.OrderCreated" \
    "$(jq -r '."e2e.avro.orders"[] | select(.id==2) | "\(.source) \(.id) \(.name)"' <<<"$SCHEMAS")"
es_eq "admin API: local schema of the iot topic" "local com.example.iot.Reading" \
    "$(jq -r '."e2e.avro.iot"[] | select(.source=="local") | "\(.source) \(.name)"' <<<"$SCHEMAS")"

# Registry outage: the event with a not-yet-cached schema id waits and is
# retried; it is delivered once the registry is back, never dead-lettered.
kill "$REG_PID"
wait "$REG_PID" 2>/dev/null || true
kcat -P -b "$BOOTSTRAP" -t e2e.avro.orders -z none "$E2E/late.bin"
es_check "registry outage is retried" \
    es_wait_log 'avro decode will be retried.*schema registry unreachable fetching id 10' 30
sleep 1
es_consume e2e.avro.dlq 6 "$ES_TMP/dlq2.txt" "$BOOTSTRAP" '%h\n'
es_eq "nothing dead-lettered during the outage" 5 "$(es_count "$ES_TMP/dlq2.txt")"
start_registry "$REG_PORT"
es_check "delivered once the registry is back" es_wait_lines "$OUT" 10 30
es_eq "the late event is the one delivered" "avro-late" \
    "$(tail -1 "$OUT" | jq -r .id)"

es_stop_daemon
es_check "no sanitizer reports" \
    bash -c "! grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' '$ES_DAEMON_LOG'"
es_finish
