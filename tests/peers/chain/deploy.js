// Deploys the compiled TicketNFT through a node-managed account over plain
// JSON-RPC and prints the contract address on stdout.
// Usage: node deploy.js RPC_URL BUILD_JSON FROM MINTER
'use strict';
const fs = require('fs');

const [url, buildJson, from, minter] = process.argv.slice(2);
if (!minter) {
  console.error('usage: node deploy.js RPC_URL BUILD_JSON FROM MINTER');
  process.exit(2);
}

let nextId = 1;
async function rpc(method, params) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({jsonrpc: '2.0', id: nextId++, method, params}),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

function word(hex) {
  return hex.replace(/^0x/, '').padStart(64, '0');
}

// ABI-encodes constructor(string,string,address): two dynamic strings
// (offsets in the head, length + padded bytes in the tail) and an address.
function encodeCtor(name, symbol, addr) {
  const tail = (s) => {
    const b = Buffer.from(s, 'utf8');
    const padded = Buffer.concat([b, Buffer.alloc((32 - (b.length % 32)) % 32)]);
    return word(b.length.toString(16)) + padded.toString('hex');
  };
  const t1 = tail(name);
  const t2 = tail(symbol);
  const head = word((96).toString(16)) +
               word((96 + t1.length / 2).toString(16)) + word(addr);
  return head + t1 + t2;
}

(async () => {
  const build = JSON.parse(fs.readFileSync(buildJson, 'utf8'));
  const data = build.bytecode + encodeCtor('Eventzr Ticket', 'ETKT', minter);
  const hash = await rpc('eth_sendTransaction',
                         [{from, data, gas: '0x' + (3000000).toString(16)}]);
  for (let i = 0; i < 200; i++) {
    const r = await rpc('eth_getTransactionReceipt', [hash]);
    if (r) {
      if (r.status !== '0x1') throw new Error('deployment reverted');
      console.log(r.contractAddress);
      return;
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error('no receipt for the deployment');
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
