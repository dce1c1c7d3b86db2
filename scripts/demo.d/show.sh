#!/usr/bin/env bash
# Shows what the demo's sinks received and what was dead-lettered.
set -euo pipefail
B=$1
echo
echo "== file sink listings.jsonl ($(wc -l <"$DEMO/listings.jsonl") events):"
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    print("  %-40s tenant=%s price=%s" % (e["type"], e.get("tenantid"), e["data"].get("price")))
' "$DEMO/listings.jsonl"
echo
echo "== dead-letter topic eventstream.dlq:"
kcat -C -b "$B" -t eventstream.dlq -o beginning -e -q \
    -f '  reason: %h\n  value:  %s\n' 2>/dev/null | sed 's/,es_/\n          es_/g'
