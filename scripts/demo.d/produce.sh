#!/usr/bin/env bash
# Produces the demo's sample events to the daemon's embedded broker.
set -euo pipefail
B=$1
echo "== producing 10 marketplace listing events (seed 001) and one malformed event"
python3 "$SRC/tests/e2e/gen_events.py" 20 --keyed | awk 'NR % 2 == 0' |
    kcat -P -b "$B" -t eventzr.marketplace.listing.created.v1 -K $'\t'
printf 'bad\t{"specversion":"1.0","source":"marketplace-svc"}\n' |
    kcat -P -b "$B" -t eventzr.marketplace.listing.created.v1 -K $'\t'
