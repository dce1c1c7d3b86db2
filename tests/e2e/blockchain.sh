#!/usr/bin/env bash
# End-to-end test of the blockchain handler against a real chain: ganache
# (npm) on loopback, TicketNFT compiled with solcjs and deployed by
# tests/peers/chain/deploy.js. The plugin is driven through the plugin
# loader path by tests/e2e/bc_driver (fake host: the daemon's retry and
# dead-letter rules, state kept in a file across "restarts").
#
# Checks: solc's selectors equal the plugin's constants; every ticket is
# minted exactly once (Transfer logs and ownerOf read from the chain over
# JSON-RPC); the emitted events carry the seed's fields and deterministic
# ids; a restart mid-stream mints nothing twice; a chain that is down for a
# while loses nothing once it returns; quota and unauthorised minter are
# dead-lettered with their reasons.
set -euo pipefail

SRC_DIR=${SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD_DIR=${BUILD_DIR:-$PWD}
PEER=$SRC_DIR/tests/peers/chain
PLUGIN=$BUILD_DIR/build-plugins/blockchain.so
DRIVER=$BUILD_DIR/tests/e2e/bc_driver
WORK=$(mktemp -d /tmp/es-e2e-blockchain.XXXXXX)
GANACHE_PID=
pass=0
fail=0

cleanup() {
  [ -n "$GANACHE_PID" ] && kill "$GANACHE_PID" 2>/dev/null && wait "$GANACHE_PID" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "# kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "ok - $*"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}

for f in "$PLUGIN" "$DRIVER" "$PEER/node_modules/.bin/ganache"; do
  [ -e "$f" ] || { echo "missing $f (build first; scripts/install-deps installs the chain peer)"; exit 1; }
done

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RPC=http://127.0.0.1:$PORT

start_ganache() {
  "$PEER/node_modules/.bin/ganache" --server.host 127.0.0.1 --server.port "$PORT" \
    --wallet.deterministic --database.dbPath "$WORK/chaindb" --logging.quiet \
    >>"$WORK/ganache.log" 2>&1 &
  GANACHE_PID=$!
  for _ in $(seq 1 150); do
    curl -sf -X POST -H 'content-type: application/json' \
      --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$RPC" >/dev/null && return 0
    sleep 0.2
  done
  echo "ganache did not start"; cat "$WORK/ganache.log"; return 1
}
stop_ganache() {
  kill "$GANACHE_PID"; wait "$GANACHE_PID" 2>/dev/null || true; GANACHE_PID=
}

# chain TICKET... -> "ticket tokenId mints owner" per ticket, read from the
# chain (Transfer logs and ownerOf) by one node process
chain() { node "$PEER/inspect.js" "$RPC" "$CONTRACT" "$@"; }
# state_of TICKET -> "mints/owner"
state_of() { chain "$1" | awk '{print $3 "/" $4}'; }

# --- contract: compile, compare selectors with the plugin's, deploy -------
node "$PEER/compile.js" "$WORK/build" >/dev/null
check "solc method identifiers equal the committed TicketNFT.hashes" \
  diff -u "$PEER/TicketNFT.hashes" "$WORK/build/TicketNFT.hashes"
start_ganache
# ganache --wallet.deterministic: accounts 0 (minter) and 1
MINTER=0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1
OTHER=0xffcf8fdee72ac11b5c542428b35eef5769c409f0
BUYER1=0x$(printf '%040x' 0xb1)
BUYER2=0x$(printf '%040x' 0xb2)
CONTRACT=$(node "$PEER/deploy.js" "$RPC" "$WORK/build/TicketNFT.json" "$MINTER" "$MINTER")
echo "# ganache on $RPC, TicketNFT at $CONTRACT, minter $MINTER"

config() { # config FROM EXTRA_JSON_MEMBERS
  cat <<JSON
{"rpc_url": "$RPC", "contract_address": "$CONTRACT", "from_address": "$1",
 "chain_id": "GANACHE", "native_token_usd": 2500, "receipt_timeout_ms": 5000,
 "rpc_timeout_ms": 2000, "wallet_wait_s": 1${2:+, $2}}
JSON
}
config "$MINTER" '"tenant_quotas": {"tenant-q": 2}' >"$WORK/conf.json"

ev() { # ev TYPE ID TENANT DATA_JSON
  printf '{"specversion":"1.0","type":"%s","source":"e2e","id":"%s","time":"2026-02-28T12:00:00.000Z","subject":"%s","datacontenttype":"application/json","data":%s}\n' "$1" "$2" "$3" "$4"
}
link() { ev eventzr.wallet.wallet.linked.v1 "w-$2-$3" "$1" "{\"tenantId\":\"$1\",\"userId\":\"$2\",\"walletAddress\":\"$3\"}"; }
buy() { ev eventzr.ticketing.ticket.purchased.v1 "p-$2" "$1" "{\"tenantId\":\"$1\",\"ticketId\":\"$2\",\"userId\":\"$3\",\"orderId\":\"o-$2\"}"; }
cancel() { ev eventzr.ticketing.ticket.cancelled.v1 "c-$2" "$1" "{\"tenantId\":\"$1\",\"ticketId\":\"$2\",\"reason\":\"refund\"}"; }

drive() { # drive CONFIG EVENTS OUT [MAX_ATTEMPTS BACKOFF_MS]
  BC_VERBOSE=1 "$DRIVER" "$PLUGIN" "$1" "$WORK/state" "$2" "$3" "${4:-4}" "${5:-200}" 2>>"$WORK/driver.log"
}
result_of() { awk -F'\t' -v id="$1" '$1=="result" && $2==id {print $3; exit}' "$2"; }
reason_of() { awk -F'\t' -v id="$1" '$1=="result" && $2==id {print $4; exit}' "$2"; }

# --- stream 1: purchases, a restart in the middle, a redelivery -----------
{
  link tenant-a user-1 "$BUYER1"
  link tenant-a user-2 "$BUYER2"
  for i in 1 2 3; do buy tenant-a "tkt-$i" user-1; done
} >"$WORK/part1.jsonl"
{
  for i in 4 5 6; do buy tenant-a "tkt-$i" user-2; done
  buy tenant-a tkt-7 user-nowallet
  cancel tenant-a tkt-6
} >"$WORK/part2.jsonl"
drive "$WORK/conf.json" "$WORK/part1.jsonl" "$WORK/out1.txt"
# "restart": a new plugin instance over the same state sees the whole stream
# again from the beginning (uncommitted offsets are redelivered)
cat "$WORK/part1.jsonl" "$WORK/part2.jsonl" >"$WORK/all.jsonl"
drive "$WORK/conf.json" "$WORK/all.jsonl" "$WORK/out2.txt"

chain tkt-1 tkt-2 tkt-3 tkt-4 tkt-5 tkt-6 tkt-7 >"$WORK/chain1.txt"
check "tickets 1-5 minted exactly once on chain across the restart" \
  test "$(awk '$1 ~ /tkt-[1-5]/ && $3 == 1' "$WORK/chain1.txt" | wc -l)" = 5
check "ownerOf(tkt-2) is user-1's wallet, ownerOf(tkt-4) user-2's" \
  test "$(awk '$1 == "tkt-2" || $1 == "tkt-4" {printf "%s ", $4}' "$WORK/chain1.txt")" = "$BUYER1 $BUYER2 "
check "cancelled tkt-6 was minted once and burned; tkt-7 (no wallet) never" \
  test "$(awk '$1 == "tkt-6" || $1 == "tkt-7" {printf "%s/%s ", $3, $4}' "$WORK/chain1.txt")" = "1/none 0/none "
check "purchase without a wallet is dead-lettered with the reason" \
  test "$(result_of p-tkt-7 "$WORK/out2.txt")/$(reason_of p-tkt-7 "$WORK/out2.txt")" = \
  "FAIL/no wallet linked for user user-nowallet after 1 s"

# the emitted events: seed 000 fields, deterministic ids, key = tenant
check "ticket.minted events carry exactly the seed's fields and re-emit the same ids" \
  python3 - "$WORK/out1.txt" "$WORK/out2.txt" "$CONTRACT" <<'PY'
import json, sys
fields = ["tenantId", "ticketId", "contractAddress", "tokenId", "chainId",
          "ownerAddress", "transactionHash", "blockNumber", "gasUsed", "costUsd"]
def minted(path):
    out = {}
    for line in open(path):
        kind, *rest = line.rstrip("\n").split("\t")
        if kind == "emit" and rest[0] == "eventzr.blockchain.ticket.minted.v1":
            ev = json.loads(rest[2])
            assert rest[1] == ev["subject"] == ev["data"]["tenantId"], rest[1]
            out.setdefault(ev["data"]["ticketId"], []).append(ev)
    return out
first, second = minted(sys.argv[1]), minted(sys.argv[2])
assert sorted(first) == ["tkt-1", "tkt-2", "tkt-3"], sorted(first)
assert sorted(second) == ["tkt-%d" % i for i in range(1, 7)], sorted(second)
for t, evs in second.items():
    ev = evs[0]
    assert len(evs) == 1, t
    assert list(ev["data"]) == fields, list(ev["data"])
    assert ev["source"] == "blockchain-svc" and ev["specversion"] == "1.0"
    d = ev["data"]
    assert d["contractAddress"] == sys.argv[3] and d["chainId"] == "GANACHE"
    assert isinstance(d["gasUsed"], str) and int(d["gasUsed"]) > 21000
    assert isinstance(d["costUsd"], float) and d["costUsd"] > 0
    assert isinstance(d["tokenId"], int) and isinstance(d["blockNumber"], int)
    if t in first:  # redelivered after the restart: the same event again
        assert first[t][0] == ev, t
PY

# --- stream 2: the chain goes away for a while ----------------------------
{
  for i in 8 9; do buy tenant-a "tkt-$i" user-1; done
} >"$WORK/part3.jsonl"
stop_ganache
drive "$WORK/conf.json" "$WORK/part3.jsonl" "$WORK/out3.txt" 12 500 &
DRIVE_PID=$!
sleep 4
start_ganache
wait $DRIVE_PID
check "both purchases made while the chain was down completed" \
  test "$(result_of p-tkt-8 "$WORK/out3.txt")/$(result_of p-tkt-9 "$WORK/out3.txt")" = "OK/OK"
check "tickets 8 and 9 minted once after the chain returned" \
  test "$(chain tkt-8 tkt-9 | awk '{printf "%s/%s ", $3, $4}')" = "1/$BUYER1 1/$BUYER1 "
check "retries were needed while the chain was down" grep -q "retries" "$WORK/driver.log"

# --- quota and an unauthorised minter --------------------------------------
{
  link tenant-q user-q "$BUYER2"
  for i in 1 2 3; do buy tenant-q "q-$i" user-q; done
} >"$WORK/part4.jsonl"
drive "$WORK/conf.json" "$WORK/part4.jsonl" "$WORK/out4.txt"
check "third mint of tenant-q is dead-lettered by the quota" \
  test "$(result_of p-q-2 "$WORK/out4.txt")/$(result_of p-q-3 "$WORK/out4.txt")/$(reason_of p-q-3 "$WORK/out4.txt")" = \
  "OK/FAIL/mint quota exceeded: tenant tenant-q used 2 of 2 (total)"
check "quota event emitted, q-3 not minted" \
  test "$(grep -c $'^emit\teventzr.blockchain.quota.events.v1' "$WORK/out4.txt")/$(state_of q-3)" = "1/0/none"

config "$OTHER" >"$WORK/conf-other.json"
buy tenant-a tkt-x user-1 >"$WORK/part5.jsonl"
drive "$WORK/conf-other.json" "$WORK/part5.jsonl" "$WORK/out5.txt"
check "a mint by a non-minter account is dead-lettered with the revert reason" \
  test "$(result_of p-tkt-x "$WORK/out5.txt")/$(reason_of p-tkt-x "$WORK/out5.txt")/$(state_of tkt-x)" = \
  "FAIL/TicketNFT: caller is not the minter/0/none"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
