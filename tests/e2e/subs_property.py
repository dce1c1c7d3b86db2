#!/usr/bin/env python3
"""Tenant isolation of subscriptions, as a property over random tenants,
subscriptions and events (run by tests/e2e/subscriptions.sh against a
running eventstreamd).

    subs_property.py API_URL TOKEN BOOTSTRAP SEED [SUBS_JSON_OUT]

Random tenants; random subscriptions (several per tenant, some tenants
none) over multi-tenant topics (prop.m*) and single-tenant ones (prop.s*),
each delivering through the kafka sink to an output topic of its own;
events with random tenants produced in phases between the creations. Every
subscription must receive exactly the events of its tenant on its topics
produced after it was created (its filter's effect applied), and none of any
other tenant's. Prints "seed=N" first so a failure can be replayed, and one
PASS/FAIL line per check.
"""
import concurrent.futures
import json
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

MULTI = ["prop.m1", "prop.m2", "prop.m3"]
SINGLE = ["prop.s1", "prop.s2"]
# Drops every third event (by data.n).
DROP_THIRDS = """
function filter(ev, topic, tenant, key)
  if ev.data.n % 3 == 0 then return "drop" end
  return "keep"
end
"""
# Tries to hand even events to another tenant: the host must not deliver
# them (a subscription only ever gets its own tenant's events).
RETENANT = """
function filter(ev, topic, tenant, key)
  if ev.data.n % 2 == 0 then ev.tenantid = "someone-else"; return ev end
  return "keep"
end
"""


def api(url, token, method, path, body=None):
    req = urllib.request.Request(
        url + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": "Bearer " + token,
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def produce(bootstrap, topic, lines):
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "\t",
                    "-z", "none"], input="".join(lines).encode(), check=True)


def delivered(url, token):
    """es_delivered_total per destination (= subscription id)."""
    req = urllib.request.Request(url + "/metrics",
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r'^es_delivered_total\{destination="([^"]*)"\} (\d+)$', text, re.M)}


def cluster_topics(bootstrap):
    """The topics the cluster has (a subscription's output topic appears
    with its first event; kcat -e would wait on a missing one)."""
    r = subprocess.run(["timeout", "20", "kcat", "-L", "-J", "-b",
                        bootstrap], capture_output=True)
    try:
        return {t["topic"] for t in json.loads(r.stdout)["topics"]}
    except ValueError:
        return set()


def consume(bootstrap, topic, existing=None):
    if existing is not None and topic not in existing:
        return []
    r = subprocess.run(["timeout", "20", "kcat", "-C", "-b", bootstrap, "-t",
                        topic, "-o", "beginning", "-e", "-q"],
                       capture_output=True)
    return [json.loads(l) for l in r.stdout.decode().splitlines() if l]


def main():
    url, token, bootstrap, seed = sys.argv[1], sys.argv[2], sys.argv[3], \
        int(sys.argv[4])
    print("seed=%d" % seed, flush=True)
    t0 = time.time()
    rng = random.Random(seed)
    tenants = ["t%05d" % i for i in rng.sample(range(100000),
                                               rng.randint(15, 25))]
    with_subs = rng.sample(tenants, max(1, int(len(tenants) * 0.7)))
    nsubs = rng.randint(20, 40)
    phases = 3
    subs = []
    for i in range(nsubs):
        tenant = with_subs[i] if i < len(with_subs) else rng.choice(with_subs)
        topics = rng.sample(MULTI + SINGLE, rng.randint(1, 3))
        kind = rng.choice(["none"] * 6 + ["thirds", "retenant"])
        subs.append({"tenant": tenant, "topics": topics, "filter": kind,
                     "phase": rng.randrange(phases)})
    subs.sort(key=lambda s: s["phase"])
    print("tenants=%d (with subscriptions: %d) subscriptions=%d" %
          (len(tenants), len(with_subs), len(subs)), flush=True)

    events = []  # (n, tenant, topic, phase)
    n = 0
    failures = 0
    for phase in range(phases):
        for s in (s for s in subs if s["phase"] == phase):
            s["out"] = "prop.out.%d" % subs.index(s)
            body = {"tenant": s["tenant"], "topics": s["topics"],
                    "destination": {"type": "kafka", "config": {
                        "brokers": bootstrap, "topic": s["out"]}}}
            if s["filter"] != "none":
                src = DROP_THIRDS if s["filter"] == "thirds" else RETENANT
                body["filter"] = {"type": "lua", "config": {"source": src}}
            st, res = api(url, token, "POST", "/v1/subscriptions", body)
            if st != 201:
                print("FAIL: create subscription: %d %s" % (st, res))
                return 1
            s["id"] = res["id"]
        by_topic = {}
        for _ in range(rng.randint(700, 1100)):
            tenant = rng.choice(tenants)
            topic = rng.choice(MULTI + SINGLE)
            ev = {"specversion": "1.0", "id": "p%d-%06d" % (seed, n),
                  "source": "prop", "type": "prop.event", "tenantid": tenant,
                  "data": {"n": n}}
            by_topic.setdefault(topic, []).append(
                tenant + "\t" + json.dumps(ev, separators=(",", ":")) + "\n")
            events.append((n, tenant, topic, phase))
            n += 1
        for topic, lines in by_topic.items():
            produce(bootstrap, topic, lines)
    print("events=%d (subscriptions created and events produced in %.1f s)"
          % (len(events), time.time() - t0), flush=True)

    expected = {}
    for s in subs:
        want = set()
        for (k, tenant, topic, phase) in events:
            if tenant != s["tenant"] or topic not in s["topics"] or \
                    phase < s["phase"]:
                continue
            if s["filter"] == "thirds" and k % 3 == 0:
                continue
            if s["filter"] == "retenant" and k % 2 == 0:
                continue
            want.add("p%d-%06d" % (seed, k))
        expected[s["id"]] = want

    # Wait until each subscription's destination has acknowledged at least
    # what it should get (its per-subscription delivered counter), then
    # read every output topic once.
    deadline = time.time() + 100
    while time.time() < deadline:
        counts = delivered(url, token)
        if all(counts.get(s["id"], 0) >= len(expected[s["id"]])
               for s in subs):
            break
        time.sleep(0.5)
    time.sleep(1)  # anything late and foreign would show now
    existing = cluster_topics(bootstrap)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = dict(pool.map(
            lambda s: (s["id"], consume(bootstrap, s["out"], existing)), subs))

    for i, s in enumerate(subs):
        evs = got[s["id"]]
        ids = {e["id"] for e in evs}
        foreign = [e for e in evs if e.get("tenantid") != s["tenant"]]
        want = expected[s["id"]]
        ok = not foreign and ids == want
        desc = "sub %s tenant=%s topics=%s filter=%s phase=%d: %d expected" % (
            s["id"], s["tenant"], ",".join(s["topics"]), s["filter"],
            s["phase"], len(want))
        if ok:
            print("PASS: " + desc)
        else:
            failures += 1
            print("FAIL: %s; got %d distinct, missing %d, unexpected %d, "
                  "other tenants' %d" % (desc, len(ids), len(want - ids),
                                         len(ids - want), len(foreign)))
    print("property: %d subscriptions, %d failed, seed=%d (%.1f s)" %
          (len(subs), failures, seed, time.time() - t0))
    if len(sys.argv) > 5:  # for the caller's checks of consumer groups
        json.dump([{"id": s["id"], "tenant": s["tenant"],
                    "topics": s["topics"]} for s in subs],
                  open(sys.argv[5], "w"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
