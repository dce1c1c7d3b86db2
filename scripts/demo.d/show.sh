#!/usr/bin/env bash
# Shows what the demo's sinks received, what the handler emitted, and what
# was dead-lettered.
set -euo pipefail
B=$1
for _ in $(seq 1 100); do
    [ "$(wc -l <"$DEMO/orders.jsonl" 2>/dev/null || echo 0)" -ge 4 ] && break
    sleep 0.3
done
echo
echo "== profiles.jsonl: profile updates after the Lua filter strip_pii.lua"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    print("  ", e["tenantid"], json.dumps(e["data"]))
' "$DEMO/profiles.jsonl"
echo
echo "== orders.jsonl: events the marketplace handler emitted (consumed back from Kafka)"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    d = e["data"]
    print("  %-40s %s tenant=%s amount=%s" % (e["type"], e["subject"], e["tenantid"],
          d.get("finalAmount", d.get("amount"))))
' "$DEMO/orders.jsonl"
echo
echo "== dead-letter topic eventstream.dlq:"
kcat -C -b "$B" -t eventstream.dlq -o beginning -e -q \
    -f '  reason: %h\n  value:  %s\n' 2>/dev/null | sed 's/,es_/\n          es_/g'
