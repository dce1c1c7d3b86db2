// Reads the chain state of tickets for the tests, in one process:
// for each ticket id prints "ticket tokenId mints owner", where tokenId is
// the handler's documented derivation (first 53 bits of SHA-256(ticketId)),
// mints the number of Transfer(0x0 -> *, tokenId) logs of the contract and
// owner the ownerOf() result ("none" when the token does not exist).
// Usage: node inspect.js RPC_URL CONTRACT TICKET...
'use strict';
const crypto = require('crypto');

const [url, contract, ...tickets] = process.argv.slice(2);
const TRANSFER =
    '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
let nextId = 1;

async function rpc(method, params) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({jsonrpc: '2.0', id: nextId++, method, params}),
  });
  return res.json();
}

const word = (n) => BigInt(n).toString(16).padStart(64, '0');

function tokenId(ticket) {
  const h = crypto.createHash('sha256').update(ticket, 'utf8').digest();
  return h.readBigUInt64BE(0) >> 11n;
}

(async () => {
  for (const t of tickets) {
    const id = tokenId(t);
    const logs = await rpc('eth_getLogs', [{
      fromBlock: '0x0',
      toBlock: 'latest',
      address: contract,
      topics: [TRANSFER, '0x' + word(0), null, '0x' + word(id)],
    }]);
    const owner = await rpc(
        'eth_call', [{to: contract, data: '0x6352211e' + word(id)}, 'latest']);
    const o = owner.result ? '0x' + owner.result.slice(-40) : 'none';
    console.log(`${t} ${id} ${logs.result.length} ${o}`);
  }
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
