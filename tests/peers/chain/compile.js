// Compiles TicketNFT.sol with solcjs (standard JSON) and writes
// OUTDIR/TicketNFT.json ({abi, bytecode, methodIdentifiers}) and
// OUTDIR/TicketNFT.hashes (solc --hashes format: "selector: signature").
// Usage: node compile.js OUTDIR
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const out = process.argv[2] || '.';
const src = fs.readFileSync(path.join(__dirname, 'TicketNFT.sol'), 'utf8');
const input = {
  language: 'Solidity',
  sources: {'TicketNFT.sol': {content: src}},
  settings: {
    // ganache 7.9 implements up to Shanghai; pin an EVM it runs.
    evmVersion: 'paris',
    optimizer: {enabled: true, runs: 200},
    outputSelection: {'*': {'*': ['abi', 'evm.bytecode.object',
                                  'evm.methodIdentifiers']}},
  },
};
const res = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (res.errors || []).filter((e) => e.severity === 'error');
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const c = res.contracts['TicketNFT.sol'].TicketNFT;
fs.mkdirSync(out, {recursive: true});
fs.writeFileSync(path.join(out, 'TicketNFT.json'), JSON.stringify({
  abi: c.abi,
  bytecode: '0x' + c.evm.bytecode.object,
  methodIdentifiers: c.evm.methodIdentifiers,
}));
const lines = Object.entries(c.evm.methodIdentifiers)
                  .map(([sig, sel]) => `${sel}: ${sig}`)
                  .sort();
fs.writeFileSync(path.join(out, 'TicketNFT.hashes'), lines.join('\n') + '\n');
console.log(`compiled TicketNFT with solc ${solc.version()}`);
