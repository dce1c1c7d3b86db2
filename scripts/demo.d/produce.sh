#!/usr/bin/env bash
# Produces the demo's sample events to the daemon's embedded broker.
set -euo pipefail
B=$1
echo "== producing user profiles with personal data, an order lifecycle for two tenants, and one malformed event"
python3 "$SRC/scripts/demo.d/events.py" | while IFS=$'\t' read -r topic key json; do
    printf '%s\t%s\n' "$key" "$json" | kcat -P -b "$B" -t "$topic" -K $'\t'
    # the order's steps in order, as the services would publish them
    sleep 0.2
done
printf 'bad\t{"specversion":"1.0","source":"user-svc"}\n' |
    kcat -P -b "$B" -t eventzr.user.profile.updated.v1 -K $'\t'
