#!/usr/bin/env bash
# MSK IAM through the real daemon: with credentials, the consumer's SASL
# OAUTHBEARER token (captured by a fake broker on loopback) is a valid
# SigV4 presign, checked by an independent Python implementation; without
# credentials startup fails and says which sources were tried.
. "$(dirname "$0")/lib.sh"

python3 "$SRC_DIR/tests/e2e/msk_fake_broker.py" >"$ES_TMP/fb.out" 2>&1 &
ES_PIDS+=($!)
for _ in $(seq 1 50); do grep -q bootstrap= "$ES_TMP/fb.out" && break; sleep 0.1; done
FB=$(sed -n 's/^bootstrap=//p' "$ES_TMP/fb.out")
CONFIG=$(es_config msk "{
  \"kafka\": {\"brokers\": \"$FB\", \"properties\": {
     \"security.protocol\": \"SASL_PLAINTEXT\", \"sasl.mechanisms\": \"OAUTHBEARER\",
     \"sasl.oauthbearer.method\": \"aws_msk_iam\", \"aws_msk_iam.region\": \"ap-south-1\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ES_TMP/out.jsonl\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"t1\"], \"destinations\": [\"out\"]}]
}")

# No credentials anywhere: a clear startup failure.
rc=0
msg=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent \
    AWS_EC2_METADATA_DISABLED=true HOME="$ES_TMP" timeout 30 "$ES_BIN" -c "$CONFIG" 2>&1) || rc=$?
es_check "no credentials: startup fails" test "$rc" -ne 0
es_check "the error lists the sources tried" grep -q "no AWS credentials found (tried: environment" <<<"$msg"

# With credentials: the broker receives a token that verifies.
export MSK_TEST_ACCESS_KEY=AKIDEXAMPLE7E2E MSK_TEST_SECRET_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
export MSK_TEST_SESSION_TOKEN="FwoGZXIvYXdzE+/session=token"
AWS_ACCESS_KEY_ID=$MSK_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MSK_TEST_SECRET_KEY \
    AWS_SESSION_TOKEN=$MSK_TEST_SESSION_TOKEN "$ES_BIN" -c "$CONFIG" 2>"$ES_TMP/d.log" &
DPID=$!
ES_PIDS+=("$DPID")
for _ in $(seq 1 100); do grep -q '^token=' "$ES_TMP/fb.out" && break; sleep 0.1; done
TOKEN=$(sed -n 's/^token=//p' "$ES_TMP/fb.out")
es_check "the broker received a token" test -n "$TOKEN"
es_check "token verifies independently" python3 "$SRC_DIR/tests/unit/test_msk_iam_token.py" \
    "$TOKEN" ap-south-1 --max-skew 120
es_check "secrets are not logged" bash -c "! grep -qE 'wJalrXUtnFEMI|FwoGZXIvYXdzE' '$ES_TMP/d.log'"
kill -TERM "$DPID" 2>/dev/null || true
wait "$DPID" 2>/dev/null || true

# The Kafka sink signs its own tokens for its (possibly other) cluster.
python3 "$SRC_DIR/tests/e2e/msk_fake_broker.py" >"$ES_TMP/fb2.out" 2>&1 &
ES_PIDS+=($!)
for _ in $(seq 1 50); do grep -q bootstrap= "$ES_TMP/fb2.out" && break; sleep 0.1; done
FB2=$(sed -n 's/^bootstrap=//p' "$ES_TMP/fb2.out")
es_start_broker -t src:1
SINKCONF=$(es_config msksink "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state2\",
  \"instances\": {\"msk\": {\"plugin\": \"kafka\", \"config\": {
     \"brokers\": \"$FB2\", \"topic\": \"copy\", \"properties\": {
       \"security.protocol\": \"SASL_PLAINTEXT\", \"sasl.mechanisms\": \"OAUTHBEARER\",
       \"sasl.oauthbearer.method\": \"aws_msk_iam\", \"aws_msk_iam.region\": \"us-east-1\"}}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"src\"], \"destinations\": [\"msk\"]}]
}")
rc=0
msg=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent \
    AWS_EC2_METADATA_DISABLED=true HOME="$ES_TMP" timeout 30 "$ES_BIN" --check-config "$SINKCONF" 2>&1) || rc=$?
es_check "kafka sink without credentials: config error" test "$rc" -ne 0
es_check "kafka sink error names the instance and the sources" \
    grep -q "instances.msk.config: .*no AWS credentials found (tried: environment" <<<"$msg"
AWS_ACCESS_KEY_ID=$MSK_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MSK_TEST_SECRET_KEY \
    AWS_SESSION_TOKEN=$MSK_TEST_SESSION_TOKEN "$ES_BIN" -c "$SINKCONF" 2>"$ES_TMP/d2.log" &
DPID=$!
ES_PIDS+=("$DPID")
for _ in $(seq 1 100); do grep -q '^token=' "$ES_TMP/fb2.out" && break; sleep 0.1; done
TOKEN=$(sed -n 's/^token=//p' "$ES_TMP/fb2.out")
es_check "the sink's cluster received a token" test -n "$TOKEN"
es_check "sink token verifies independently (us-east-1)" python3 \
    "$SRC_DIR/tests/unit/test_msk_iam_token.py" "$TOKEN" us-east-1 --max-skew 120
kill -TERM "$DPID" 2>/dev/null || true
es_finish
