#!/usr/bin/env bash
# The admin API against the running daemon: probes, bearer auth, JSON
# errors, Prometheus metrics whose numbers match what the sink received, and
# every path of api/openapi.yaml answering.
. "$(dirname "$0")/lib.sh"

es_start_broker -t api-in:2
PORT=$(es_free_port)
TOKEN=s3cr3t-$RANDOM
OUT="$ES_TMP/out.jsonl"
CONFIG=$(es_config api "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"api-in\"], \"destinations\": [\"out\"]}]
}")
URL=http://127.0.0.1:$PORT
es_start_daemon "$CONFIG"
es_eq "health" '{"status":"ok"}' "$(curl -s "$URL/health")"
es_eq "ready once joined" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/ready")"
es_eq "metrics without token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")"
es_eq "401 body is JSON" '{"error":"missing or wrong bearer token"}' "$(curl -s "$URL/metrics")"
es_eq "wrong token: 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x$TOKEN" "$URL/metrics")"
es_eq "POST /v1/reload without the token: 401, nothing reloaded" "401 1" \
    "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/v1/reload") $(grep -c 'running config=' "$ES_DAEMON_LOG")"
es_eq "unknown path: 404 JSON" '{"error":"no such endpoint"}' "$(curl -s "$URL/nope")"
es_eq "wrong method: 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/health")"
es_check "token never logged" bash -c "! grep -q '$TOKEN' '$ES_DAEMON_LOG'"

python3 "$SRC_DIR/tests/e2e/gen_events.py" 250 >"$ES_TMP/ev.txt"
printf '{"bad"\n' >>"$ES_TMP/ev.txt"
es_produce api-in "$ES_TMP/ev.txt"
es_wait_lines "$OUT" 250 30 || true
sleep 1.5 # one commit interval, so the lag gauge is fresh
curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" >"$ES_TMP/metrics.txt"
es_check "metrics parse as Prometheus text" python3 - "$ES_TMP/metrics.txt" <<'PY'
import re, sys
sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \+?Inf$')
seen_types = set()
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        name = line.split()[2]
        assert name not in seen_types, "family split: " + name
        seen_types.add(name)
        continue
    assert sample.match(line), "bad sample line: " + line
assert seen_types, "no metrics"
PY
metric() { sed -n "s/^$1 //p" "$ES_TMP/metrics.txt"; }
es_eq "delivered counter equals sink lines" "$(es_count "$OUT")" "$(metric 'es_delivered_total{destination="out"}')"
es_eq "consumed counter" 251 "$(metric es_consumed_total)"
es_eq "decode failures counted" 1 "$(metric es_decode_failed_total)"
es_eq "latency histogram counts every delivery" 250 "$(metric 'es_delivery_latency_seconds_count{destination="out"}')"
families=$(sed -n 's/^# TYPE \(es_[a-z_]*\) .*/\1/p' "$ES_TMP/metrics.txt" | grep -v '^es_plugin_')
undocumented=$(for family in $families; do
    grep -q "\`$family\`" "$SRC_DIR/docs/api.md" || echo "$family"; done)
es_eq "every host metric family shown ($(wc -w <<<"$families")) is in api.md's reference" \
    "" "$undocumented"
es_check "the run shows at least ten host families" test "$(wc -w <<<"$families")" -ge 10
es_check "lag gauge per partition" grep -q '^es_consumer_lag{group="eventstreamd",topic="api-in",partition="[01]"} 0$' "$ES_TMP/metrics.txt"

# Every path documented in the OpenAPI document answers: a {param} is
# sent as is (curl -g), and a 404 counts only when it is "no such endpoint"
# (a 404 naming a missing resource means the route exists).
for path in $(sed -n 's/^  \(\/[^:]*\):$/\1/p' "$SRC_DIR/api/openapi.yaml"); do
    code=$(curl -gs -o "$ES_TMP/answer" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL$path")
    es_check "documented $path answers ($code)" test "$code" != 000 -a \
        "$(cat "$ES_TMP/answer")" != '{"error":"no such endpoint"}'
done
es_stop_daemon TERM

# HTTPS with the token in a file. --check-config reads the files as the
# daemon does: a missing, empty, mismatched or encrypted one is an error
# naming the file and the key, and the daemon refuses to start with it.
TLS=$ES_TMP/tls
mkdir -p "$TLS"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS/key.pem" \
    -out "$TLS/cert.pem" -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS/other-key.pem" \
    -out "$TLS/other-cert.pem" -days 2 -subj /CN=other 2>/dev/null
openssl pkey -in "$TLS/key.pem" -aes256 -passout pass:pw \
    -out "$TLS/encrypted-key.pem"
printf '%s\n' "$TOKEN" >"$TLS/token"
: >"$TLS/empty-token"
tls_config() { # NAME TOKEN_FILE CERT KEY
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token_file\": \"$2\",
            \"tls_cert\": \"$3\", \"tls_key\": \"$4\"},
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"api-in\"], \"destinations\": [\"out\"]}]
}"
}
refused() { # NAME CONFIG EXPECTED-MESSAGE
    local got
    got=$("$ES_BIN" --check-config "$2" 2>&1 | tail -1 || true)
    es_eq "--check-config: $1" "eventstreamd: $2: $3" "$got"
    got=$(timeout 20 "$ES_BIN" -c "$2" 2>&1 | grep -v 'level=' | tail -1 || true)
    es_eq "start refused: $1" "eventstreamd: $2: $3" "$got"
}
C=$(tls_config tls-mismatch "$TLS/token" "$TLS/cert.pem" "$TLS/other-key.pem")
refused "key of another certificate" "$C" \
    "api.tls_key: $TLS/other-key.pem is not the key of the certificate in $TLS/cert.pem"
C=$(tls_config tls-encrypted "$TLS/token" "$TLS/cert.pem" "$TLS/encrypted-key.pem")
refused "encrypted key" "$C" \
    "api.tls_key: $TLS/encrypted-key.pem is encrypted; give an unencrypted key (the daemon cannot type a password)"
C=$(tls_config tls-swapped "$TLS/token" "$TLS/key.pem" "$TLS/cert.pem")
refused "key given as the certificate" "$C" \
    "api.tls_cert: $TLS/key.pem holds no PEM certificate"
C=$(tls_config tls-missing "$TLS/token" "$TLS/nope.pem" "$TLS/key.pem")
refused "missing certificate" "$C" \
    "api.tls_cert: cannot read $TLS/nope.pem: No such file or directory"
C=$(tls_config tls-empty-token "$TLS/empty-token" "$TLS/cert.pem" "$TLS/key.pem")
refused "empty token file" "$C" \
    "api.token_file: $TLS/empty-token has no token on its first line"

C=$(tls_config tls "$TLS/token" "$TLS/cert.pem" "$TLS/key.pem")
es_eq "--check-config: the good TLS files" "$C: OK (1 instance(s), 1 route(s))" \
    "$("$ES_BIN" --check-config "$C" 2>/dev/null)"
es_start_daemon "$C"
es_check "log says https with a token" grep -q \
    "admin API listening on 127.0.0.1:$PORT (https, bearer token required)" "$ES_DAEMON_LOG"
TLS_URL=https://127.0.0.1:$PORT
es_eq "https health, certificate verified" '{"status":"ok"}' \
    "$(curl -s --cacert "$TLS/cert.pem" "$TLS_URL/health")"
es_eq "https: the token from the file" 200 "$(curl -s -o /dev/null -w '%{http_code}' \
    --cacert "$TLS/cert.pem" -H "Authorization: Bearer $TOKEN" "$TLS_URL/metrics")"
es_eq "https: an empty bearer token is refused" 401 "$(curl -s -o /dev/null -w '%{http_code}' \
    --cacert "$TLS/cert.pem" -H "Authorization: Bearer " "$TLS_URL/metrics")"
es_check "plain http to the TLS port gets no answer" bash -c \
    "! curl -s --max-time 5 '$URL/health' | grep -q status"
es_stop_daemon TERM
es_finish
