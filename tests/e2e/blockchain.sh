#!/usr/bin/env bash
# End-to-end test of the blockchain handler against a real chain: ganache
# (npm) on loopback, TicketNFT compiled with solcjs and deployed by
# tests/peers/chain/deploy.js; ownerOf and Transfer logs are read back from
# the chain by tests/peers/chain/inspect.js.
#
# Part 1 drives the plugin alone (tests/e2e/bc_driver: dlopen, fake host
# with the daemon's retry/dead-letter rules, state in a file across
# "restarts"): selectors equal solc's, restart mid-stream, chain outage,
# quota, unauthorised minter, no wallet.
# Part 2 runs it inside eventstreamd with the mock Kafka cluster: purchase
# and wallet events produced with kcat, ticket.minted consumed back with
# kcat, a SIGKILL of the daemon mid-stream and ganache stopped for a while:
# every ticket minted exactly once on chain, every minted event with the
# seed's fields, redeliveries re-emitting identical events.
. "$(dirname "$0")/lib.sh"

PEER=$SRC_DIR/tests/peers/chain
PLUGIN=$BUILD_DIR/build-plugins/blockchain.so
DRIVER=$BUILD_DIR/tests/e2e/bc_driver
WORK=$ES_TMP
GANACHE_PID=

check() { es_check "$@"; }

for f in "$PLUGIN" "$DRIVER" "$PEER/node_modules/.bin/ganache"; do
  [ -e "$f" ] || { echo "missing $f (build first; scripts/install-deps installs the chain peer)"; exit 1; }
done

PORT=$(es_free_port) # ganache restarts on it: below the ephemeral range
RPC=http://127.0.0.1:$PORT

start_ganache() { # [ganache options]: mines instantly unless told otherwise
  "$PEER/node_modules/.bin/ganache" --server.host 127.0.0.1 --server.port "$PORT" \
    --wallet.deterministic --database.dbPath "$WORK/chaindb" --logging.quiet \
    "$@" >>"$WORK/ganache.log" 2>&1 &
  GANACHE_PID=$!
  ES_PIDS+=("$GANACHE_PID")
  # node and ganache take seconds to start, more on a loaded machine
  for _ in $(seq 1 450); do
    curl -sf -X POST -H 'content-type: application/json' \
      --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$RPC" >/dev/null && return 0
    kill -0 "$GANACHE_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "ganache did not start on $RPC:" >&2
  cat "$WORK/ganache.log" >&2 || true
  return 1
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

config() { # config FROM [EXTRA_JSON_MEMBERS [WALLET_WAIT_S]]
  cat <<JSON
{"rpc_url": "$RPC", "contract_address": "$CONTRACT", "from_address": "$1",
 "chain_id": "GANACHE", "native_token_usd": 2500, "receipt_timeout_ms": 5000,
 "rpc_timeout_ms": 2000, "wallet_wait_s": ${3:-1}${2:+, $2}}
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


# --- part 2: inside eventstreamd ---------------------------------------------
MINTED=eventzr.blockchain.ticket.minted.v1
es_start_broker -t ticketing-events:2 -t wallet-events:1 -t eventstream.dlq:1 \
  -t "$MINTED:1" -t eventzr.blockchain.nft.events.v1:1 \
  -t eventzr.blockchain.transaction.events.v1:1 \
  -t eventzr.blockchain.quota.events.v1:1
DCONF=$(es_config daemon "{
  \"kafka\": {\"brokers\": \"$BOOTSTRAP\", \"properties\": {
     \"session.timeout.ms\": \"6000\", \"heartbeat.interval.ms\": \"500\"}},
  \"plugin_dir\": \"$ES_PLUGIN_DIR\",
  \"state_dir\": \"$ES_TMP/dstate\",
  \"retry\": {\"initial_backoff_ms\": 200, \"max_backoff_ms\": 2000, \"max_attempts\": 0},
  \"instances\": {\"chain\": {\"plugin\": \"blockchain\", \"config\":
     $(config "$MINTER" '' 4)}},
  \"routes\": [{\"name\": \"mint\", \"topics\": [\"ticketing-events\", \"wallet-events\"],
               \"destinations\": [\"chain\"]}]
}")
check "daemon accepts the blockchain instance config" "$ES_BIN" --check-config "$DCONF"

keyed() { sed 's/^\(.*"subject":"\([^"]*\)".*\)$/\2\t\1/'; }
# consume_minted OUT: everything on the minted topic so far, "key TAB value"
consume_minted() { es_consume_all "$MINTED" "$1" "$BOOTSTRAP" '%k\t%s\n'; }
# wait_minted N SECS: until N distinct tickets were minted (or the time ends)
wait_minted() {
  local i
  for i in $(seq 1 "$2"); do
    consume_minted "$WORK/minted.txt"
    [ "$(cut -f2 "$WORK/minted.txt" | grep -o '"ticketId":"[^"]*"' | sort -u | wc -l)" -ge "$1" ] && return 0
    sleep 1
  done
  return 1
}

es_start_daemon "$DCONF"
# purchases first: their wallets arrive later on another topic, so the
# handler retries them until the link is there
for i in 1 2 3 4; do buy tenant-d "d-$i" "user-d$((i % 2))"; done | keyed >"$WORK/d1.txt"
{ link tenant-d user-d0 "$BUYER1"; link tenant-d user-d1 "$BUYER2"; } | keyed >"$WORK/dw.txt"
es_produce ticketing-events "$WORK/d1.txt"
sleep 1
es_produce wallet-events "$WORK/dw.txt"
check "daemon: 4 purchases minted" wait_minted 4 60

# SIGKILL mid-stream, then restart: redeliveries must not mint again. From
# here on ganache mines a block a second, so six mints take several seconds
# and the kill lands with transactions sent but not yet mined.
stop_ganache
start_ganache --miner.blockTime 1
for i in $(seq 5 10); do buy tenant-d "d-$i" "user-d$((i % 2))"; done | keyed >"$WORK/d2.txt"
es_produce ticketing-events "$WORK/d2.txt"
sleep 2.5
es_log "minted before the kill: $(grep -c 'msg="minted ticket=d-\([5-9]\|10\) ' "$ES_DAEMON_LOG")"
es_stop_daemon KILL || true
es_start_daemon "$DCONF"
check "daemon: all 10 purchases minted after a SIGKILL restart" wait_minted 10 90

# the chain goes away for a while
stop_ganache
for i in 11 12; do buy tenant-d "d-$i" user-d1; done | keyed >"$WORK/d3.txt"
es_produce ticketing-events "$WORK/d3.txt"
sleep 5
start_ganache --miner.blockTime 1
check "daemon: purchases made while the chain was down minted once it returned" \
  wait_minted 12 90

# a buyer who never links a wallet: dead-lettered with the reason
buy tenant-d d-13 user-ghost | keyed >"$WORK/d4.txt"
es_produce ticketing-events "$WORK/d4.txt"
# (es_consume waits up to 30 s for the record)
es_consume eventstream.dlq 1 "$WORK/dlq.txt" "$BOOTSTRAP" '%k|%h|%s\n'
check "daemon: purchase without a wallet dead-lettered with the reason" \
  grep -q '^tenant-d|.*es_reason=no wallet linked for user user-ghost after [0-9]* s' "$WORK/dlq.txt"

chain $(seq -f 'd-%g' 1 13) >"$WORK/chain-d.txt"
check "daemon: d-1..d-12 minted exactly once on chain, d-13 never" \
  test "$(awk '$1 != "d-13" && $3 == 1 && $4 != "none"' "$WORK/chain-d.txt" | wc -l)/$(grep '^d-13 ' "$WORK/chain-d.txt" | cut -d' ' -f3-)" = "12/0 none"
check "daemon: owners are the linked wallets" \
  test "$(awk '{print $1, $4}' "$WORK/chain-d.txt" | grep -E '^d-(2|4) ' | cut -d' ' -f2 | sort -u)" = "$BUYER1"

consume_minted "$WORK/minted.txt"
check "daemon: minted events have the seed's fields, key = tenant, and any redelivery is identical" \
  python3 - "$WORK/minted.txt" "$WORK/chain-d.txt" "$CONTRACT" <<'PY'
import json, sys
fields = ["tenantId", "ticketId", "contractAddress", "tokenId", "chainId",
          "ownerAddress", "transactionHash", "blockNumber", "gasUsed", "costUsd"]
chain = {l.split()[0]: l.split() for l in open(sys.argv[2])}
by_id = {}
tickets = {}
for line in open(sys.argv[1]):
    key, value = line.rstrip("\n").split("\t", 1)
    ev = json.loads(value)
    d = ev["data"]
    assert key == ev["subject"] == d["tenantId"] == "tenant-d", key
    assert list(d) == fields, list(d)
    assert ev["type"] == "eventzr.blockchain.ticket.minted.v1"
    assert ev["source"] == "blockchain-svc" and ev["id"].startswith("evt-")
    assert d["contractAddress"] == sys.argv[3]
    assert str(d["tokenId"]) == chain[d["ticketId"]][1], d["ticketId"]
    assert d["ownerAddress"] == chain[d["ticketId"]][3]
    assert isinstance(d["gasUsed"], str) and isinstance(d["costUsd"], float)
    if ev["id"] in by_id:
        assert by_id[ev["id"]] == ev, "redelivery differs: " + ev["id"]
    by_id[ev["id"]] = ev
    tickets.setdefault(d["ticketId"], set()).add(ev["id"])
assert sorted(tickets) == sorted("d-%d" % i for i in range(1, 13)), sorted(tickets)
assert all(len(ids) == 1 for ids in tickets.values()), tickets
print("# %d minted records, %d distinct events" % (sum(1 for _ in open(sys.argv[1])), len(by_id)))
PY

rc=0; es_stop_daemon TERM || rc=$?
es_eq "daemon: SIGTERM exits 0" 0 "$rc"

es_finish
