#!/usr/bin/env bash
# Regions (docs/config.md "region"): events of tenants whose primary region
# is elsewhere are not forwarded (no delivery, no dead letter, offsets move
# on) and are counted; a map file changed on disk flips a tenant between
# forwarded and skipped; a bad refresh keeps the last good map (logged once,
# counted); a bad map at start is a config error naming the source; a map
# served over HTTP by python's http.server on loopback, with
# "unknown_tenant": "skip".
. "$(dirname "$0")/lib.sh"

TOPIC=reg-in
es_start_broker -t $TOPIC:2
PORT=$(es_free_port)
TOKEN=reg-$RANDOM
URL=http://127.0.0.1:$PORT
OUT="$ES_TMP/out.jsonl"
MAP="$ES_TMP/tenant-regions.json"

config() { # $1 = tenant_regions source, $2 = unknown_tenant
    es_config "reg-$RANDOM" "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\", \"state_dir\": \"$ES_TMP/state\",
  \"region\": {\"name\": \"eu-west-1\", \"tenant_regions\": \"$1\",
               \"refresh_ms\": 300, \"unknown_tenant\": \"$2\"},
  \"api\": {\"listen\": \"127.0.0.1:$PORT\", \"token\": \"$TOKEN\"},
  \"pipeline\": {\"commit_interval_ms\": 200},
  \"instances\": {\"out\": {\"plugin\": \"file\", \"config\": {\"path\": \"$OUT\"}}},
  \"routes\": [{\"name\": \"r\", \"topics\": [\"$TOPIC\"], \"tenant\": [\"data.tenant\"],
                \"destinations\": [\"out\"]}]
}"
}
write_map() { printf '%s\n' "$1" >"$MAP.tmp" && mv "$MAP.tmp" "$MAP"; }
gen() { # $1 = prefix, then tenant=count pairs
    python3 - "$@" <<'PY'
import json, sys
prefix = sys.argv[1]
for spec in sys.argv[2:]:
    tenant, n = spec.split("=")
    for i in range(int(n)):
        ev = {"specversion": "1.0", "id": "%s-%s-%d" % (prefix, tenant, i),
              "source": "t", "type": "x"}
        if tenant != "-":
            ev["data"] = {"tenant": tenant}
        else:
            ev["data"] = {}
        print(json.dumps(ev))
PY
}
metric() { curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" | sed -n "s/^$1 //p"; }
at_sink() { grep -cE "\"tenant\": ?\"$1\"" "$OUT" || true; }
wait_count() { # $1 = pattern, $2 = count: waits for that many log lines
    for i in $(seq 1 150); do
        [ "$(grep -cE "$1" "$ES_DAEMON_LOG")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# --- a bad map at start is a config error naming the source and problem
write_map '{"home": "eu-west-1", "away": ["us-east-1"]}'
rc=0
timeout 30 "$ES_BIN" -c "$(config "$MAP" forward)" 2>"$ES_TMP/bad.log" || rc=$?
es_check "bad map at start: exit non-zero ($rc)" test "$rc" -ne 0 -a "$rc" -ne 124
es_check "bad map at start: names key, source and problem" grep -qF \
    "region.tenant_regions: $MAP: tenant \\\"away\\\": the region must be a non-empty string" "$ES_TMP/bad.log"
rc=0
"$ES_BIN" --check-config "$(config "$ES_TMP/missing.json" forward)" >"$ES_TMP/check.log" 2>&1 || rc=$?
es_check "--check-config: missing map is an error" grep -qF \
    "region.tenant_regions: $ES_TMP/missing.json: cannot read: No such file or directory" "$ES_TMP/check.log"

# --- file map: home forwarded, away skipped, unknown forwarded
write_map '{"home": "eu-west-1", "away": "us-east-1"}'
CONFIG=$(config "$MAP" forward)
es_start_daemon "$CONFIG"
es_check "map loaded at start" grep -q 'region map loaded region=eu-west-1 .*tenants=2' "$ES_DAEMON_LOG"
gen a home=20 away=15 stranger=5 -=3 >"$ES_TMP/a.txt"
es_produce $TOPIC "$ES_TMP/a.txt"
es_wait_lines "$OUT" 28 30 || true
sleep 1.5
es_eq "home tenant forwarded" 20 "$(at_sink home)"
es_eq "away tenant not forwarded" 0 "$(at_sink away)"
es_eq "unknown tenant forwarded (unknown_tenant=forward)" 5 "$(at_sink stranger)"
es_eq "sink total (no tenant forwarded too)" 28 "$(es_count "$OUT")"
es_eq "skips counted per route and region" 15 "$(metric 'es_region_skipped_total{route="r",region="us-east-1"}')"
es_eq "skipped events are not dead letters" 0 "$(metric es_dead_letters_total)"
es_consume_all eventstream.dlq "$ES_TMP/dlq.txt"
es_eq "dead-letter topic empty" 0 "$(es_count "$ES_TMP/dlq.txt")"
es_eq "offsets move past skipped events (lag 0 on both partitions)" "0 0" \
    "$(curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" | sed -n "s/^es_consumer_lag{.*topic=\"$TOPIC\".*} //p" | tr '\n' ' ' | sed 's/ $//')"

# --- the map changes on disk: the tenants swap regions
write_map '{"home": "us-east-1", "away": "eu-west-1", "third": "eu-west-1"}'
es_wait_log "region map loaded .*tenants=3" 15 || true
gen b home=10 away=12 >"$ES_TMP/b.txt"
es_produce $TOPIC "$ES_TMP/b.txt"
es_wait_lines "$OUT" 40 30 || true
sleep 1
es_eq "after the change: home skipped" 20 "$(at_sink home)"
es_eq "after the change: away forwarded" 12 "$(at_sink away)"
es_eq "skips of home counted" 10 "$(metric 'es_region_skipped_total{route="r",region="us-east-1"}' | awk '{print $1 - 15}')"

# --- a bad refresh keeps the last good map, logged once, counted
write_map '{"home": '
sleep 1.5 # several refreshes
es_eq "failed refresh logged once per streak" 1 "$(grep -c 'region map refresh failed' "$ES_DAEMON_LOG")"
es_check "failed refreshes counted" test "$(metric es_region_map_refresh_failed_total)" -ge 2
gen c home=4 away=6 >"$ES_TMP/c.txt"
es_produce $TOPIC "$ES_TMP/c.txt"
es_wait_lines "$OUT" 46 30 || true
sleep 1
es_eq "last good map still in force: away forwarded" 18 "$(at_sink away)"
es_eq "last good map still in force: home skipped" 20 "$(at_sink home)"
write_map '{"home": "eu-west-1"}'
es_wait_log "region map refresh recovered" 15 || true
es_check "recovery logged" grep -q "region map refresh recovered" "$ES_DAEMON_LOG"
es_stop_daemon TERM

# --- a map served over HTTP, unknown tenants skipped
WWW="$ES_TMP/www"
mkdir -p "$WWW"
printf '{"home": "eu-west-1", "away": "ap-south-1"}' >"$WWW/regions.json"
HPORT=$(es_free_port)
python3 -m http.server "$HPORT" --bind 127.0.0.1 --directory "$WWW" >"$ES_TMP/http.log" 2>&1 &
ES_PIDS+=($!)
for i in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$HPORT/regions.json" >/dev/null && break
    sleep 0.1
done
: >"$OUT"
: >"$ES_DAEMON_LOG"
es_start_daemon "$(config "http://127.0.0.1:$HPORT/regions.json" skip)" "$ES_DAEMON_LOG"
es_check "HTTP map loaded" grep -q "region map loaded .*source=http://127.0.0.1:$HPORT/regions.json tenants=2" "$ES_DAEMON_LOG"
gen d home=7 away=5 stranger=4 -=2 >"$ES_TMP/d.txt"
es_produce $TOPIC "$ES_TMP/d.txt"
es_wait_lines "$OUT" 7 30 || true
sleep 1.5
es_eq "HTTP map: home forwarded" 7 "$(at_sink home)"
es_eq "HTTP map: only home at the sink" 7 "$(es_count "$OUT")"
es_eq "HTTP map: away counted under its region" 5 "$(metric 'es_region_skipped_total{route="r",region="ap-south-1"}')"
es_eq "unknown_tenant=skip: unknown and tenantless counted" 6 "$(metric 'es_region_skipped_total{route="r",region="unknown"}')"
printf '{"home": "ap-south-1", "away": "eu-west-1"}' >"$WWW/regions.json"
wait_count "region map loaded .*source=http" 2 || true
sleep 1
gen e home=3 away=4 >"$ES_TMP/e.txt"
es_produce $TOPIC "$ES_TMP/e.txt"
es_wait_lines "$OUT" 11 30 || true
sleep 1
es_eq "HTTP map refreshed: away forwarded now" 4 "$(at_sink away)"
es_eq "HTTP map refreshed: home skipped now" 7 "$(at_sink home)"
es_stop_daemon TERM
es_finish
