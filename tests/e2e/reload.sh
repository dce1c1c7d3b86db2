#!/usr/bin/env bash
# SIGHUP reloads the config (docs/config.md#signals): a config that fails
# the check is refused with the file and the key and the running one goes
# on; a good one is taken after a drain and a commit, in place (same pid),
# with nothing lost or delivered twice, the admin API back on its port and
# no descriptors left over; POST /v1/reload does the same and answers
# with what the check found; a check that hangs is killed after
# pipeline.reload_check_timeout_ms; with the embedded broker both are
# refused.
. "$(dirname "$0")/lib.sh"

TOPIC=reload-in
GEN="$SRC_DIR/tests/e2e/gen_events.py"
OUT_A="$ES_TMP/a.jsonl"
OUT_B="$ES_TMP/b.jsonl"
es_start_broker -t "$TOPIC:2" -t eventstream.dlq:1
PORT=$(es_free_port)
CONFIG="$ES_TMP/config.json"
SECRET=r3load-$RANDOM$RANDOM # a secret in the config: never shown
PLUGINS="$ES_TMP/plugins" # the build's and the sample filter (a slow init)
mkdir -p "$PLUGINS"
ln -s "$ES_PLUGIN_DIR"/*.so "$BUILD_DIR/tests/e2e/.libs/samplefilter.so" "$PLUGINS/"
write_config() { # $1 = the route's destinations, $2 = out-a's file sink config
    printf '%s\n' "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\",
     \"sasl.password\": \"$SECRET\"}},
  \"plugin_dir\": \"$PLUGINS\", \"state_dir\": \"$ES_TMP/state\",
  \"pipeline\": {\"reload_check_timeout_ms\": 3000},
  \"api\": {\"listen\": \"127.0.0.1:$PORT\"},
  \"instances\": {\"out-a\": {\"plugin\": \"file\", \"config\": $2},
                \"out-b\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT_B\"}},
                \"hook\": {\"plugin\": \"https\", \"config\": {\"url\": \"http://alice:$SECRET@127.0.0.1:9/v3/$SECRET$SECRET/in?api_key=$SECRET&page=2\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"$TOPIC\"], \"destinations\": $1}]
}" >"$CONFIG"
}
produce() { # $1 = first id, $2 = count: prints the ids produced
    python3 "$GEN" "$2" --start "$1" --keyed >"$ES_TMP/batch.txt"
    es_produce "$TOPIC" "$ES_TMP/batch.txt"
    cut -f2 "$ES_TMP/batch.txt" | jq -r .id
}
ids() { jq -r .id "$1" | sort; }
fds() { ls "/proc/$ES_DAEMON_PID/fd" | wc -l; }
starts() { grep -c "running config=$CONFIG" "$ES_DAEMON_LOG"; }
# running_sha: the digest GET /v1/config shows; file_sha: the file's now
running_sha() { curl -s "http://127.0.0.1:$PORT/v1/config" | jq -r .sha256; }
file_sha() { sha256sum "$CONFIG" | cut -d' ' -f1; }
metric() { # $1 = name{labels}: its value on /metrics
    curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# out-a's path from the environment (${NAME} in the config, config.md),
# which a reload keeps; an unset one stops --check-config naming the key
write_config '["out-a"]' '{"path": "${ES_RELOAD_OUT_A}"}'
es_eq "an unset \${NAME}: --check-config names the key" \
    "eventstreamd: $CONFIG: instances.out-a.config.path: \${ES_RELOAD_OUT_A} is not set in the environment" \
    "$("$ES_BIN" --check-config "$CONFIG" 2>&1 | tail -1)"
export ES_RELOAD_OUT_A="$OUT_A"
es_start_daemon "$CONFIG"
PID=$ES_DAEMON_PID
produce 0 200 >"$ES_TMP/sent1.txt"
es_wait_lines "$OUT_A" 200 30 || true
es_eq "before any reload: out-a has the first 200" 200 "$(es_count "$OUT_A")"
FDS0=$(fds)
curl -s "http://127.0.0.1:$PORT/v1/config" >"$ES_TMP/config-answer.json"
es_eq "GET /v1/config: the path, the file's digest, when it was loaded" \
    "$CONFIG $(file_sha) true" \
    "$(jq -r '"\(.path) \(.sha256) \(.loaded_at | test("^20[0-9-]+T[0-9:]+Z$"))"' "$ES_TMP/config-answer.json")"
es_eq "GET /v1/config: the config as written (\${NAME} kept), its secrets masked (a URL's password, key-like path segment and secret query parameter too)" \
    "\${ES_RELOAD_OUT_A} ******** http://alice:********@127.0.0.1:9/v3/********/in?api_key=********&page=2" \
    "$(jq -r '"\(.config.instances["out-a"].config.path) \(.config.kafka.properties["sasl.password"]) \(.config.instances.hook.config.url)"' "$ES_TMP/config-answer.json")"
es_check "GET /v1/config: the secret is nowhere in the answer" \
    bash -c "! grep -q '$SECRET' '$ES_TMP/config-answer.json'"

# --- a config that fails the check: refused, named, the old one goes on
write_config '["out-a"]' "{\"pth\": \"$OUT_A\"}"
kill -HUP "$PID"
es_check "bad config: the reload is refused with the file and the key" \
    es_wait_log "SIGHUP: reload refused, the running config is kept: $CONFIG: instances.out-a.config: pth: unknown key" 30
es_check "bad config: the same process goes on" kill -0 "$PID"
es_eq "bad config: not started again" 1 "$(starts)"
es_eq "bad config: es_config_last_reload_successful is 0" 0 "$(metric es_config_last_reload_successful)"
es_check "bad config: GET /v1/config still shows the running one (its digest is not the file's)" \
    test "$(running_sha)" != "$(file_sha)" -a "$(running_sha)" != ""
# a check that logs half a megabyte before its error (a script logging at
# load): its output is drained, and the error is still its last line
for _ in 1 2 3 4 5 6 7 8 9 10; do
    printf '%s\n' 'for i = 1, 300 do es.log("info", string.rep("x", 160)) end'
done >"$ES_TMP/noisy.lua"
echo 'function filter(ev) return "keep" end' >>"$ES_TMP/noisy.lua"
write_config '["out-a"]' "{\"path\": \"$OUT_A\"}"
jq --arg s "$ES_TMP/noisy.lua" '.instances.noisy = {"plugin": "lua", "config": {"script": $s}}
    | .instances.late = {"plugin": "file", "config": {"pth": "x"}}
    | .routes[0].filters = ["noisy"]' "$CONFIG" >"$ES_TMP/noisy.json"
mv "$ES_TMP/noisy.json" "$CONFIG"
refusals() { grep -c 'SIGHUP: reload refused' "$ES_DAEMON_LOG"; }
kill -HUP "$PID"
for _ in $(seq 1 300); do [ "$(refusals)" -ge 2 ] && break; sleep 0.1; done
es_eq "a check that logs 0.5 MB: refused with its last error line" \
    "2 $CONFIG: instances.late.config: pth: unknown key\"" \
    "$(refusals) $(grep 'SIGHUP: reload refused' "$ES_DAEMON_LOG" | tail -1 | sed 's/.*the running config is kept: //')"
# a check that hangs (a plugin's init that does not return): killed after
# the running config's pipeline.reload_check_timeout_ms and refused; the
# next reload is not held up by it
write_config '["out-a"]' "{\"path\": \"$OUT_A\"}"
jq '.instances.slow = {"plugin": "samplefilter", "config": {"init_sleep_ms": 600000}}' \
    "$CONFIG" >"$ES_TMP/slow.json"
mv "$ES_TMP/slow.json" "$CONFIG"
hung_at=$SECONDS
kill -HUP "$PID"
for _ in $(seq 1 300); do [ "$(refusals)" -ge 3 ] && break; sleep 0.1; done
es_eq "a check that hangs: refused after reload_check_timeout_ms" \
    "3 the check did not finish within 3000 ms (pipeline.reload_check_timeout_ms); a plugin's init may hang\"" \
    "$(refusals) $(grep 'SIGHUP: reload refused' "$ES_DAEMON_LOG" | tail -1 | sed 's/.*the running config is kept: //')"
es_check "a check that hangs: refused within 3-10 s" test $((SECONDS - hung_at)) -ge 3 -a $((SECONDS - hung_at)) -le 10
es_check "a check that hangs: its process is killed" bash -c "! pgrep -f -- '[-]-check-config $CONFIG' >/dev/null"
produce 200 100 >>"$ES_TMP/sent1.txt"
es_wait_lines "$OUT_A" 300 30 || true
es_eq "bad config: events keep flowing to out-a" 300 "$(es_count "$OUT_A")"

# --- a good config: drained, committed, started again in place
write_config '["out-a", "out-b"]' "{\"path\": \"$OUT_A\"}"
HUP_AT=$(date +%s)
kill -HUP "$PID"
es_check "good config: logged as checked and draining" \
    es_wait_log "SIGHUP: $CONFIG passes the check; draining and committing" 30
es_check "good config: started again in place" \
    es_wait_log "reloading: starting again in place with $CONFIG" 30
for _ in $(seq 1 300); do [ "$(starts)" -ge 2 ] && break; sleep 0.1; done
es_eq "good config: the daemon started a second time" 2 "$(starts)"
es_wait_log "consumer joined.*" 60 >/dev/null 2>&1 || true
es_check "good config: same pid" kill -0 "$PID"
es_eq "good config: the same process image is the daemon" \
    "$ES_BIN" "$(readlink -f "/proc/$PID/exe")"
es_eq "good config: the API answers again on its port" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health" || true)"
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
FDS1=$(fds)
es_eq "good config: es_config_last_reload_successful is 1 again" 1 "$(metric es_config_last_reload_successful)"
es_eq "good config: GET /v1/config shows the file's digest again" "$(file_sha)" "$(running_sha)"
es_check "good config: loaded at the reload (es_config_last_reload_success_timestamp_seconds)" \
    test "$(metric es_config_last_reload_success_timestamp_seconds)" -ge "$HUP_AT"
es_eq "es_build_info names the version" 1 "$(metric 'es_build_info{version="'"$("$ES_BIN" --version | cut -d' ' -f2)"'"}')"
produce 300 150 >"$ES_TMP/sent2.txt"
es_wait_lines "$OUT_B" 150 30 || true
es_wait_lines "$OUT_A" 450 30 || true
es_eq "after the reload: the new destination gets only what came after it" \
    "$(sort "$ES_TMP/sent2.txt")" "$(ids "$OUT_B")"
es_eq "after the reload: out-a has every event exactly once (committed before)" \
    "$(sort "$ES_TMP/sent1.txt" "$ES_TMP/sent2.txt")" "$(ids "$OUT_A")"

# --- again, with the same config: nothing piles up across reloads
kill -HUP "$PID"
for _ in $(seq 1 300); do [ "$(starts)" -ge 3 ] && break; sleep 0.1; done
es_eq "second reload: started a third time" 3 "$(starts)"
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
produce 450 50 >"$ES_TMP/sent3.txt"
es_wait_lines "$OUT_B" 200 30 || true
FDS2=$(fds)
es_check "reloads: open descriptors $FDS0 before, $FDS1 and $FDS2 after, none left over" \
    test "$FDS1" -le "$FDS0" -a "$FDS2" -le "$FDS0"
es_eq "second reload: nothing lost or doubled" \
    "$(sort "$ES_TMP/sent2.txt" "$ES_TMP/sent3.txt")" "$(ids "$OUT_B")"

# --- POST /v1/reload: the same, answered with what the check found
reload_api() { curl -s -o "$ES_TMP/answer" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/v1/reload"; }
write_config '["out-a", "out-b"]' "{\"pth\": \"$OUT_A\"}"
es_eq "POST /v1/reload, bad config: 400 with the file and the key" \
    "400 reload refused, the running config is kept: $CONFIG: instances.out-a.config: pth: unknown key" \
    "$(reload_api) $(jq -r .error "$ES_TMP/answer")"
es_eq "POST /v1/reload, bad config: not started again" 3 "$(starts)"
es_eq "POST /v1/reload, bad config: logged as asked by the API" 1 \
    "$(grep -c 'POST /v1/reload: reload refused' "$ES_DAEMON_LOG")"
write_config '["out-a", "out-b"]' "{\"path\": \"$OUT_A\"}"
es_eq "POST /v1/reload, good config: 202" \
    "202 true $CONFIG passes the check; draining and committing, then starting again with it" \
    "$(reload_api) $(jq -r '"\(.reloading) \(.message)"' "$ES_TMP/answer")"
for _ in $(seq 1 300); do [ "$(starts)" -ge 4 ] && break; sleep 0.1; done
es_eq "POST /v1/reload: started a fourth time, same pid" "4 yes" \
    "$(starts) $(kill -0 "$PID" && echo yes)"
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
es_eq "GET /v1/reload: 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/reload")"

# --- a SIGTERM while a reload drains: the daemon stops (exit 0) rather
# than starting again, or, if the new process had begun, that one stops
checked() { grep -c "passes the check" "$ES_DAEMON_LOG"; }
kill -HUP "$PID"
for _ in $(seq 1 3000); do [ "$(checked)" -ge 4 ] && break; sleep 0.01; done
# gone: no longer the daemon (exited, a zombie, or the pid taken by another
# program once bash reaped it)
gone() { [ "$(readlink "/proc/$PID/exe" 2>/dev/null)" != "$(readlink -f "$ES_BIN")" ]; }
kill -TERM "$PID"
for _ in $(seq 1 300); do gone && break; sleep 0.1; done
es_check "SIGTERM during a reload: the daemon ends within 30 s" gone
gone || tail -30 "$ES_DAEMON_LOG" >&2
rc=0; es_stop_daemon TERM || rc=$?
es_eq "SIGTERM during a reload: exit 0" 0 "$rc"
es_check "SIGTERM during a reload: logged as stopped" es_wait_log '"stopped"|msg=stopped' 1
es_check "the config's secret is never logged" bash -c "! grep -q '$SECRET' '$ES_DAEMON_LOG'"
es_check "no sanitizer report in the log" \
    bash -c "! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$ES_DAEMON_LOG'"

# --- the embedded broker lives in the process: a reload would lose it
EMB_PORT=$(es_free_port)
EMB=$(es_config embedded "{
  \"kafka\": {\"brokers\": \"embedded\"}, \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"api\": {\"listen\": \"127.0.0.1:$EMB_PORT\"},
  \"state_dir\": \"$ES_TMP/state-emb\",
  \"instances\": {\"o\": {\"plugin\": \"file\", \"config\": {\"path\": \"$ES_TMP/emb.jsonl\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"emb-in\"], \"destinations\": [\"o\"]}]
}")
es_start_daemon "$EMB"
kill -HUP "$ES_DAEMON_PID"
es_check "embedded broker: the reload is refused, with why" \
    es_wait_log "SIGHUP: not reloading: the embedded broker's topics live in this process" 10
es_check "embedded broker: the daemon goes on" kill -0 "$ES_DAEMON_PID"
es_eq "embedded broker: POST /v1/reload is a 409 saying why" "409 not reloading: the embedded broker's topics live in this process" \
    "$(curl -s -o "$ES_TMP/answer" -w '%{http_code}' -X POST "http://127.0.0.1:$EMB_PORT/v1/reload") $(jq -r .error "$ES_TMP/answer" | cut -d' ' -f1-10)"
rc=0; es_stop_daemon TERM || rc=$?
es_eq "embedded broker: SIGTERM still stops it cleanly" 0 "$rc"
es_finish
