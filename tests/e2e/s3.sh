#!/usr/bin/env bash
# S3 sink end to end: Kafka (mock cluster) -> eventstreamd -> s3 plugin ->
# s3_front.py (re-verifies every SigV4 signature with botocore, implements
# If-None-Match) -> s3rver. Credentials come from the environment, as the
# chain's first source.
#   1. objects appear under the documented keys, gzip round-trips, every
#      event exactly once;
#   2. a wrong secret: a clear error in the log, events retried, none lost
#      once the secret is fixed;
#   3. the daemon killed (SIGKILL) after the objects are written but before
#      the offsets are committed: after restart nothing is missing and no
#      object is written twice;
#   4. credentials from a profile's credential_process (the environment
#      keys unset), and objects larger than part_size: multipart uploads of
#      gzip objects made of many members, which decompress (gzip, zcat,
#      Python) to exactly the produced events;
#   5. an https endpoint behind a private CA: refused without it (the TLS
#      problem in the log, nothing lost), taken with ca_file and with
#      AWS_CA_BUNDLE; a ca_file that does not exist is a config error.
. "$(dirname "$0")/lib.sh"

TOPIC=eventzr.marketplace.listing.created.v1
GEN="$SRC_DIR/tests/e2e/gen_events.py"
S3RVER="$SRC_DIR/tests/peers/s3rver/node_modules/.bin/s3rver"
DATA="$ES_TMP/s3data"
AKID=AKIDE2ETEST
SECRET=e2e-secret-key

if [ ! -x "$S3RVER" ]; then
    echo "s3rver is not installed: run scripts/install-deps" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# --- peers: broker and the verifying front (which starts s3rver; it also
# speaks HTTPS with a self-signed certificate, the private CA of part 5)
es_start_broker -t "$TOPIC:2" -t eventstream.dlq:1 -t e2e.tls:1
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ES_TMP/store-key.pem" \
    -out "$ES_TMP/store-ca.pem" -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
python3 "$SRC_DIR/tests/e2e/s3_front.py" --s3rver "$S3RVER" --data "$DATA" \
    --bucket e2e --access-key "$AKID" --secret-key "$SECRET" --region eu-west-1 \
    --tls-cert "$ES_TMP/store-ca.pem" --tls-key "$ES_TMP/store-key.pem" \
    >"$ES_TMP/front.out" 2>"$ES_TMP/front.err" &
ES_PIDS+=($!)
for _ in $(seq 1 300); do
    grep -q '^port=' "$ES_TMP/front.out" 2>/dev/null && break
    sleep 0.1
done
FRONT_PORT=$(sed -n 's/^port=//p' "$ES_TMP/front.out")
TLS_PORT=$(sed -n 's/^tls_port=//p' "$ES_TMP/front.out")
[ -n "$FRONT_PORT" ] || { cat "$ES_TMP/front.err" >&2; exit 1; }

front_stat() {
    curl -s "http://127.0.0.1:$FRONT_PORT/__front/stats" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}

# Object keys in the bucket, one per line.
objects() {
    (cd "$DATA/e2e" 2>/dev/null && find . -name '*._S3rver_object' |
        sed 's|^\./||; s|\._S3rver_object$||' | sort) || true
}

# Every event id in every object (gunzipped), one per line; only those
# under PREFIX/ when given.
stored_ids() {
    python3 - "$DATA/e2e/${1:-}" <<'EOF'
import gzip, json, os, sys
root = sys.argv[1]
for d, _, files in os.walk(root):
    for f in files:
        if f.endswith("._S3rver_object"):
            with gzip.open(os.path.join(d, f), "rt") as fh:
                for line in fh:
                    print(json.loads(line)["id"])
EOF
}

# wait_ids N SECONDS [PREFIX]: until N distinct ids are stored.
wait_ids() {
    local want=$1 secs=$2 i
    for i in $(seq 1 $((secs * 2))); do
        [ "$(stored_ids "${3:-}" | sort -u | wc -l)" -ge "$want" ] && return 0
        sleep 0.5
    done
    return 1
}

config() { # config NAME COMMIT_INTERVAL_MS
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state\",
  \"log\": {\"level\": \"info\"},
  \"retry\": {\"initial_backoff_ms\": 200, \"max_backoff_ms\": 1000, \"max_attempts\": 0},
  \"pipeline\": {\"commit_interval_ms\": $2, \"shutdown_timeout_ms\": 2000},
  \"instances\": {\"lake\": {\"plugin\": \"s3\", \"config\": {
     \"bucket\": \"e2e\", \"region\": \"eu-west-1\",
     \"endpoint\": \"http://127.0.0.1:$FRONT_PORT\", \"path_style\": true,
     \"max_object_events\": 250, \"max_object_age_ms\": 1000}}},
  \"routes\": [{\"name\": \"listings\", \"topics\": [\"$TOPIC\"],
               \"destinations\": [\"lake\"]}]
}"
}
CONFIG=$(config main 1000)
CONFIG_NOCOMMIT=$(config nocommit 600000)

export AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY=$SECRET
export AWS_EC2_METADATA_DISABLED=true

es_check "config is valid" "$ES_BIN" --check-config "$CONFIG"
BAD=$(es_config bad "{\"kafka\": {\"brokers\": \"x\"}, \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"instances\": {\"o\": {\"plugin\": \"s3\", \"config\": {\"bucket\": \"b\", \"gzip_levl\": 3}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"t\"], \"destinations\": [\"o\"]}]}")
msg=$("$ES_BIN" --check-config "$BAD" 2>&1 || true)
es_check "unknown s3 config key is named" grep -q "gzip_levl: unknown key" <<<"$msg"

# --- 1. objects, keys, gzip, exactly once
es_start_daemon "$CONFIG"
python3 "$GEN" 2000 --keyed --tenants 4 >"$ES_TMP/b1.txt"
es_produce "$TOPIC" "$ES_TMP/b1.txt"
wait_ids 2000 60 || true
es_eq "2,000 events stored" 2000 "$(stored_ids | sort -u | wc -l)"
es_eq "each exactly once" 2000 "$(stored_ids | wc -l)"
keys_ok=$(objects | grep -cE "^$TOPIC/00000000-0000-0000-0000-00000000000[0-3]/2026/0(2/28|3/02)/12/[01]-[0-9]{20}-[0-9]{20}\.jsonl\.gz$" || true)
es_eq "every key follows the default template" "$(objects | wc -l)" "$keys_ok"
es_check "objects were cut by count (250) and age" test "$(objects | wc -l)" -ge 8
es_check "stored events are the produced bytes" \
    cmp -s <(cut -f2 "$ES_TMP/b1.txt" | sort) \
    <(find "$DATA/e2e" -name '*._S3rver_object' -exec zcat {} + | sort)
es_eq "no request failed signature checks" 0 "$(front_stat sig_bad)"
es_stop_daemon TERM || true

# --- 2. wrong secret: clear error, retried, none lost
export AWS_SECRET_ACCESS_KEY=not-the-secret
es_start_daemon "$CONFIG"
python3 "$GEN" 300 --start 2000 --keyed --tenants 4 >"$ES_TMP/b2.txt"
es_produce "$TOPIC" "$ES_TMP/b2.txt"
es_wait_log "SignatureDoesNotMatch" 30 || true
es_check "wrong secret: log names the S3 error and the credential source" \
    grep -qE "HTTP 403 SignatureDoesNotMatch.*check the credentials \(from environment\)" "$ES_DAEMON_LOG"
es_check "wrong secret: the log says the events will be retried" \
    grep -q "will be retried" "$ES_DAEMON_LOG"
es_check "wrong secret: the secret is never logged" \
    bash -c "! grep -q not-the-secret '$ES_DAEMON_LOG'"
sleep 2
es_eq "wrong secret: nothing stored meanwhile" 2000 "$(stored_ids | wc -l)"
es_stop_daemon TERM || true
export AWS_SECRET_ACCESS_KEY=$SECRET
es_start_daemon "$CONFIG"
wait_ids 2300 60 || true
es_eq "fixed secret: all 300 retried events stored" 2300 "$(stored_ids | sort -u | wc -l)"
es_eq "fixed secret: none twice" 2300 "$(stored_ids | wc -l)"
es_stop_daemon TERM || true

# --- 3. killed between upload and commit
es_start_daemon "$CONFIG_NOCOMMIT"
python3 "$GEN" 1000 --start 2300 --keyed --tenants 4 >"$ES_TMP/b3.txt"
es_produce "$TOPIC" "$ES_TMP/b3.txt"
wait_ids 3300 60 || true
es_eq "before the kill: 1,000 more events stored" 3300 "$(stored_ids | sort -u | wc -l)"
n_objects=$(objects | wc -l)
pf0=$(front_stat precondition_failed)
es_stop_daemon KILL || true
es_start_daemon "$CONFIG"
# The uncommitted events come again; each batch is cut as before and finds
# its object already there (412).
for _ in $(seq 1 120); do
    [ "$(front_stat precondition_failed)" -gt "$pf0" ] && break
    sleep 0.5
done
sleep 3
es_check "after restart: redelivered batches found their objects (412)" \
    test "$(front_stat precondition_failed)" -gt "$pf0"
es_eq "after restart: no new object" "$n_objects" "$(objects | wc -l)"
es_eq "after restart: nothing missing" 3300 "$(stored_ids | sort -u | wc -l)"
es_eq "after restart: nothing twice" 3300 "$(stored_ids | wc -l)"
es_check "after restart: redelivery completed (log)" \
    bash -c "! grep -q 'failed, events' '$ES_DAEMON_LOG'"
es_stop_daemon TERM || true

# --- 4. credential_process profile; multipart, multi-member gzip objects
# (4 KiB parts, as these events compress ~29x: s3rver accepts them, S3
# would want 5 MiB)
cat >"$ES_TMP/creds.sh" <<EOF
#!/bin/sh
echo run >>"$ES_TMP/creds.runs"
printf '{"Version": 1, "AccessKeyId": "%s", "SecretAccessKey": "%s"}\n' \
    "$AKID" "$SECRET"
EOF
chmod 700 "$ES_TMP/creds.sh"
printf '[profile e2eproc]\ncredential_process = %s\n' "$ES_TMP/creds.sh" \
    >"$ES_TMP/aws_config"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export AWS_CONFIG_FILE="$ES_TMP/aws_config"
export AWS_SHARED_CREDENTIALS_FILE="$ES_TMP/no-such-file"
CONFIG_MM=$(es_config mm "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state-mm\",
  \"log\": {\"level\": \"info\"},
  \"retry\": {\"initial_backoff_ms\": 200, \"max_backoff_ms\": 1000, \"max_attempts\": 0},
  \"instances\": {\"lake\": {\"plugin\": \"s3\", \"config\": {
     \"bucket\": \"e2e\", \"region\": \"eu-west-1\", \"profile\": \"e2eproc\",
     \"endpoint\": \"http://127.0.0.1:$FRONT_PORT\", \"path_style\": true,
     \"part_size\": 4096, \"gzip_level\": 6, \"max_object_age_ms\": 1500,
     \"key_template\": \"mm/{topic}/{tenant}/{partition}-{start_offset}-{end_offset}.jsonl.gz\"}}},
  \"routes\": [{\"name\": \"listings-mm\", \"group\": \"s3-e2e-mm\",
               \"topics\": [\"$TOPIC\"], \"destinations\": [\"lake\"]}]
}")
parts0=$(front_stat parts)
bad0=$(front_stat sig_bad)
es_start_daemon "$CONFIG_MM"
python3 "$GEN" 4000 --start 3300 --keyed --tenants 1 >"$ES_TMP/b4.txt"
es_produce "$TOPIC" "$ES_TMP/b4.txt"
wait_ids 4000 90 mm || true
es_eq "credential_process: 4,000 events stored" 4000 "$(stored_ids mm | sort -u | wc -l)"
es_check "credential_process: the profile's command was run" test -s "$ES_TMP/creds.runs"
es_eq "credential_process: every request passed the signature check" "$bad0" "$(front_stat sig_bad)"
es_check "large objects went up as multipart uploads" \
    test "$(front_stat parts)" -ge $((parts0 + 8))
members=$(python3 - "$DATA/e2e/mm" <<'EOF'
import os, sys, zlib
most = 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if not f.endswith("._S3rver_object"):
            continue
        data = open(os.path.join(d, f), "rb").read()
        n = 0
        while data:
            z = zlib.decompressobj(16 + 15)
            text = z.decompress(data)
            assert z.eof and text.endswith(b"\n"), "member not whole lines"
            data = z.unused_data
            n += 1
        most = max(most, n)
print(most)
EOF
) || members=0
es_check "objects are multi-member gzip, each member whole lines ($members)" \
    test "${members:-0}" -ge 8
es_check "zcat of the objects gives exactly the produced events" \
    cmp -s <(cut -f2 "$ES_TMP/b4.txt" | sort) \
    <(find "$DATA/e2e/mm" -name '*._S3rver_object' -exec zcat {} + | sort)
es_stop_daemon TERM || true

# --- 5. https endpoint behind a private CA (credentials still from the
# credential_process profile)
tls_config() { # NAME GROUP CA_FILE_MEMBER
    es_config "$1" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\",
     \"auto.offset.reset\": \"earliest\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/state-$1\",
  \"retry\": {\"initial_backoff_ms\": 200, \"max_backoff_ms\": 1000, \"max_attempts\": 0},
  \"pipeline\": {\"shutdown_timeout_ms\": 1000},
  \"instances\": {\"lake\": {\"plugin\": \"s3\", \"config\": {$3
     \"bucket\": \"e2e\", \"region\": \"eu-west-1\", \"profile\": \"e2eproc\",
     \"endpoint\": \"https://127.0.0.1:$TLS_PORT\", \"path_style\": true,
     \"max_object_age_ms\": 500,
     \"key_template\": \"tls/{topic}/{tenant}/{partition}-{start_offset}-{end_offset}.jsonl\",
     \"gzip\": false}}},
  \"routes\": [{\"name\": \"listings-tls\", \"group\": \"$2\",
               \"topics\": [\"e2e.tls\"], \"destinations\": [\"lake\"]}]
}"
}
tls_ids() {
    (find "$DATA/e2e/tls" -name '*._S3rver_object' -exec cat {} + 2>/dev/null || true) |
        python3 -c 'import json,sys; [print(json.loads(l)["id"]) for l in sys.stdin]'
}
C=$(tls_config tls-missing s3-e2e-tls "\"ca_file\": \"$ES_TMP/no-ca.pem\",")
es_eq "ca_file that does not exist: config error" \
    "ca_file: $ES_TMP/no-ca.pem: No such file or directory" \
    "$("$ES_BIN" --check-config "$C" 2>&1 | sed -n 's/.*instances\.lake\.config: //p' | tail -1)"
C=$(tls_config tls-env-missing s3-e2e-tls "")
es_eq "AWS_CA_BUNDLE that does not exist: config error" \
    "ca_file (AWS_CA_BUNDLE): $ES_TMP/no-ca.pem: No such file or directory" \
    "$(AWS_CA_BUNDLE=$ES_TMP/no-ca.pem "$ES_BIN" --check-config "$C" 2>&1 |
        sed -n 's/.*instances\.lake\.config: //p' | tail -1)"

C=$(tls_config tls-noca s3-e2e-tls "")
es_start_daemon "$C"
python3 "$GEN" 60 --start 8000 --keyed --tenants 1 >"$ES_TMP/b5.txt"
es_produce e2e.tls "$ES_TMP/b5.txt"
es_check "without the CA: the TLS problem is in the log" \
    es_wait_log "SSL certificate problem: self.signed certificate" 30
es_eq "without the CA: nothing stored" 0 "$(tls_ids | wc -l)"
es_stop_daemon TERM || true

C=$(tls_config tls-ca s3-e2e-tls "\"ca_file\": \"$ES_TMP/store-ca.pem\",")
es_start_daemon "$C"
for _ in $(seq 1 60); do [ "$(tls_ids | sort -u | wc -l)" -ge 60 ] && break; sleep 0.5; done
es_check "with ca_file: the same 60 events stored over https, none lost" \
    cmp -s <(cut -f2 "$ES_TMP/b5.txt" | python3 -c 'import json,sys; [print(json.loads(l)["id"]) for l in sys.stdin]' | sort) \
    <(tls_ids | sort -u)
es_stop_daemon TERM || true

C=$(tls_config tls-env s3-e2e-tls "")
export AWS_CA_BUNDLE=$ES_TMP/store-ca.pem
es_start_daemon "$C"
unset AWS_CA_BUNDLE
python3 "$GEN" 40 --start 9000 --keyed --tenants 1 >"$ES_TMP/b6.txt"
es_produce e2e.tls "$ES_TMP/b6.txt"
for _ in $(seq 1 60); do [ "$(tls_ids | sort -u | wc -l)" -ge 100 ] && break; sleep 0.5; done
es_eq "with AWS_CA_BUNDLE: 40 more stored" 100 "$(tls_ids | sort -u | wc -l)"
es_stop_daemon TERM || true

es_finish
