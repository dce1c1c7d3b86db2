#!/usr/bin/env python3
"""Prints the demo's sample events as TOPIC<TAB>KEY<TAB>JSON lines: user
profile updates with personal data (for the Lua PII filter), and an order
lifecycle per tenant (quote accepted, payment completed, escrow released)
for the marketplace handler, in the seed 001 envelope."""
import json

TENANTS = ["00000000-0000-0000-0000-000000000001",
           "00000000-0000-0000-0000-000000000002"]


def ev(i, typ, source, tenant, subject, data):
    return {"specversion": "1.0", "id": f"demo-{i:04d}", "type": typ,
            "source": source, "time": "2026-03-02T12:00:00.000Z",
            "datacontenttype": "application/json", "subject": subject,
            "tenantid": tenant, "data": data}


def main():
    out, i = [], 0
    for n, tenant in enumerate(TENANTS):
        i += 1
        out.append(ev(i, "eventzr.user.profile.updated.v1", "user-svc", tenant,
                      f"user:u{n}", {"userId": f"u{n}", "displayName": f"Seller {n}",
                                     "email": f"seller{n}@example.com",
                                     "phone": "+1-555-0100", "firstName": "Ada",
                                     "lastName": "Lovelace", "lane": "vendora"}))
        order = f"order-{n}"
        for typ, src, data in [
            ("eventzr.marketplace.quote.accepted.v1", "marketplace-svc",
             {"id": f"quote-{n}", "orderId": order, "listingId": f"listing-{n}",
              "buyerId": f"buyer-{n}", "sellerId": f"seller-{n}",
              "amount": 5000 + n, "currency": "USD"}),
            ("eventzr.wallet.payment.completed.v1", "wallet-svc",
             {"id": f"pay-{n}", "orderId": order, "amount": 5000 + n,
              "currency": "USD", "method": "card"}),
            ("eventzr.wallet.escrow.released.v1", "wallet-svc",
             {"id": f"escrow-{n}", "orderId": order, "paymentId": f"pay-{n}",
              "amount": 4750, "currency": "USD"}),
        ]:
            i += 1
            out.append(ev(i, typ, src, tenant, f"order:{order}", data))
    for e in out:
        print(f"{e['type']}\t{e['tenantid']}\t{json.dumps(e, separators=(',', ':'))}")


if __name__ == "__main__":
    main()
