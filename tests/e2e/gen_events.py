#!/usr/bin/env python3
"""Writes seed-shaped CloudEvents (marketplace-svc and blockchain-svc
envelopes from the seeds), one JSON per line, optionally KEY<TAB>VALUE.

usage: gen_events.py COUNT [--start N] [--keyed] [--size BYTES] [--tenants N]
"""
import argparse
import json
import sys


def event(i, tenants, size):
    tenant = "00000000-0000-0000-0000-%012d" % (i % tenants)
    if i % 2:
        ev = {
            "specversion": "1.0",
            "id": "evt-%08d" % i,
            "type": "eventzr.marketplace.listing.created.v1",
            "source": "marketplace-svc",
            "time": "2026-03-02T12:00:00.000Z",
            "datacontenttype": "application/json",
            "subject": "listing:%d" % i,
            "tenantid": tenant,
            "data": {"id": "listing-%d" % i, "title": "Premium Catering Service",
                     "lane": "vendora", "sellerId": "seller-%d" % (i % 97),
                     "price": 5000 + i, "currency": "USD"},
        }
    else:
        ev = {
            "specversion": "1.0",
            "type": "eventzr.blockchain.ticket.minted.v1",
            "source": "blockchain-svc",
            "id": "evt-%08d" % i,
            "time": "2026-02-28T12:00:00.000Z",
            "datacontenttype": "application/json",
            "subject": tenant,
            "data": {"tenantId": tenant, "ticketId": "ticket-%d" % i,
                     "contractAddress": "0x1234abcd", "tokenId": i,
                     "chainId": "POLYGON", "ownerAddress": "0xabcd1234",
                     "transactionHash": "0xdeadbeef%08x" % i,
                     "blockNumber": 12345678 + i, "gasUsed": "21000",
                     "costUsd": 0.002},
        }
    text = json.dumps(ev, separators=(",", ":"))
    if size and len(text) < size:
        ev["data"]["note"] = "x" * (size - len(text) - 10)
        text = json.dumps(ev, separators=(",", ":"))
    return tenant, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("count", type=int)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--keyed", action="store_true")
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--tenants", type=int, default=5)
    a = ap.parse_args()
    out = sys.stdout
    for i in range(a.start, a.start + a.count):
        tenant, text = event(i, a.tenants, a.size)
        out.write(f"{tenant}\t{text}\n" if a.keyed else text + "\n")


if __name__ == "__main__":
    main()
