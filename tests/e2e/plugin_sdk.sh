#!/usr/bin/env bash
# The plugin SDK as a third party uses it: `make install` into a staging
# root, build docs/examples/counting_sink.c with only the installed header
# and pkg-config file, drop the .so into a plugin directory beside the
# stock ones, and run it in the daemon. Also the systemd unit and the
# manual page it installs.
. "$(dirname "$0")/lib.sh"

STAGE="$ES_TMP/stage"
make -C "$BUILD_DIR" install DESTDIR="$STAGE" >"$ES_TMP/install.log" 2>&1
es_check "make install succeeds" test $? -eq 0
PC=$(find "$STAGE" -name eventstream-plugin.pc | head -1)
es_check "pkg-config file installed" test -n "$PC"
es_check "header installed" test -n "$(find "$STAGE" -path '*include/eventstream/plugin.h')"
es_check "daemon installed" test -n "$(find "$STAGE" -path '*bin/eventstreamd')"
es_check "plugins installed in lib/eventstream/plugins" \
    test -n "$(find "$STAGE" -path '*lib/eventstream/plugins/file.so')"

# The systemd unit: installed, naming the installed daemon and the config
# under sysconfdir, and taken by systemd-analyze (its paths pointed into
# the staging root, since verify checks that the binary exists).
UNIT=$(find "$STAGE" -name eventstreamd.service | head -1)
es_check "systemd unit installed under lib/systemd/system" \
    grep -q 'lib/systemd/system/eventstreamd.service$' <<<"$UNIT"
BINDIR=$(sed -n 's/^bindir = //p' "$BUILD_DIR/Makefile")
SYSCONFDIR=$(sed -n 's/^sysconfdir = //p' "$BUILD_DIR/Makefile")
PREFIX=$(sed -n 's/^prefix = //p' "$BUILD_DIR/Makefile")
BINDIR=${BINDIR//\$\{exec_prefix\}/$PREFIX}
SYSCONFDIR=${SYSCONFDIR//\$\{prefix\}/$PREFIX}
es_check "unit starts the installed daemon with its config" grep -qx \
    "ExecStart=$BINDIR/eventstreamd -c $SYSCONFDIR/eventstream/config.json" "$UNIT"
es_check "the unit's daemon is where make install put it" test -x "$STAGE$BINDIR/eventstreamd"
mkdir -p "$ES_TMP/unit"
sed "s|ExecStart=$BINDIR|ExecStart=$STAGE$BINDIR|" "$UNIT" >"$ES_TMP/unit/eventstreamd.service"
es_check "systemd-analyze verify takes the unit ($(systemd-analyze verify "$ES_TMP/unit/eventstreamd.service" 2>&1 | head -3))" \
    bash -c "systemd-analyze verify '$ES_TMP/unit/eventstreamd.service' 2>&1 | (! grep -q .)"

# The manual page: in man8, with the configured paths, no groff warning
MAN=$(find "$STAGE" -path '*/man8/eventstreamd.8' | head -1)
es_check "manual page installed in share/man/man8" test -n "$MAN"
es_check "manual page names the unit's config path" grep -qF "$SYSCONFDIR/eventstream/config.json" "$MAN"
es_check "manual page renders with no warning" \
    bash -c "LC_ALL=C.UTF-8 man --warnings -l '$MAN' 2>&1 >/dev/null | (! grep -q .)"

CFLAGS=$(PKG_CONFIG_PATH=$(dirname "$PC") PKG_CONFIG_SYSROOT_DIR="$STAGE" \
    pkg-config --cflags eventstream-plugin)

mkdir -p "$ES_TMP/plugins"
cp "$ES_PLUGIN_DIR"/file.so "$ES_TMP/plugins/"
cc -std=c11 -Wall -Werror -shared -fPIC $CFLAGS -o "$ES_TMP/plugins/counting.so" \
    "$SRC_DIR/docs/examples/counting_sink.c" $(pkg-config --libs libcjson)
es_check "example plugin builds against the installed SDK" test -f "$ES_TMP/plugins/counting.so"

es_start_broker -t demo:2
CONFIG=$(es_config sdk "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_TMP/plugins\", \"state_dir\": \"$ES_TMP/state\",
  \"instances\": {\"count\": {\"plugin\": \"counting\", \"config\": {\"every\": 50}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"demo\"], \"destinations\": [\"count\"]}]
}")
es_start_daemon "$CONFIG"
python3 "$SRC_DIR/tests/e2e/gen_events.py" 100 >"$ES_TMP/ev.txt"
es_produce demo "$ES_TMP/ev.txt"
es_check "third-party plugin receives the events" es_wait_log 'component="count" msg="counted 100 events' 30
es_stop_daemon TERM
es_finish
