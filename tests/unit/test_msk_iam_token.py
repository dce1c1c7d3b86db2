#!/usr/bin/env python3
"""Independent check of an MSK IAM token built by host/aws/msk_iam.c.

Decodes the base64url token, parses the URL and recomputes the SigV4
signature from scratch with hmac/hashlib (no shared code with the C signer).
Secrets come from the environment (MSK_TEST_ACCESS_KEY, MSK_TEST_SECRET_KEY,
MSK_TEST_SESSION_TOKEN), the rest from the command line:

  test_msk_iam_token.py TOKEN REGION [--sign-time EPOCH | --max-skew SECONDS]
                        [--user-agent UA]

Prints "OK ..." and exits 0, or prints what is wrong and exits 1.
"""
import argparse
import base64
import binascii
import calendar
import hashlib
import hmac
import os
import re
import sys
import time
import urllib.parse


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def aws_quote(s):
    # RFC 3986 unreserved characters stay, everything else is %XY.
    return urllib.parse.quote(s, safe="-_.~")


def hmac256(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("token")
    ap.add_argument("region")
    ap.add_argument("--sign-time", type=int)
    ap.add_argument("--max-skew", type=int, default=300)
    ap.add_argument("--user-agent")
    a = ap.parse_args()

    access_key = os.environ["MSK_TEST_ACCESS_KEY"]
    secret = os.environ["MSK_TEST_SECRET_KEY"]
    session_token = os.environ.get("MSK_TEST_SESSION_TOKEN", "")

    tok = a.token
    if not re.fullmatch(r"[A-Za-z0-9_-]+", tok):
        fail("token is not unpadded base64url")
    try:
        url = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as e:
        fail("token does not decode: %s" % e)

    host = "kafka.%s.amazonaws.com" % a.region
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        fail("scheme %r" % parts.scheme)
    if parts.netloc != host:
        fail("host %r, expected %r" % (parts.netloc, host))
    if parts.path != "/":
        fail("path %r" % parts.path)
    if parts.fragment:
        fail("fragment %r" % parts.fragment)

    raw = [p.split("=", 1) for p in parts.query.split("&")]
    if any(len(p) != 2 for p in raw):
        fail("query has a parameter without '='")
    keys = [urllib.parse.unquote(k) for k, _ in raw]
    vals = {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, v in raw}
    rawvals = {urllib.parse.unquote(k): v for k, v in raw}
    if len(vals) != len(raw):
        fail("duplicate query parameter in %r" % keys)
    expected = {"Action", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature",
                "User-Agent"}
    if session_token:
        expected.add("X-Amz-Security-Token")
    if set(keys) != expected:
        fail("query parameters %r, expected %r" % (sorted(keys),
                                                   sorted(expected)))
    # The User-Agent is appended after signing, the signature right before.
    if keys[-1] != "User-Agent" or keys[-2] != "X-Amz-Signature":
        fail("parameter order %r" % keys)
    if a.user_agent is not None and vals["User-Agent"] != a.user_agent:
        fail("User-Agent %r" % vals["User-Agent"])
    if not vals["User-Agent"]:
        fail("empty User-Agent")

    if vals["Action"] != "kafka-cluster:Connect":
        fail("Action %r" % vals["Action"])
    if rawvals["Action"] != "kafka-cluster%3AConnect":
        fail("Action encoded as %r" % rawvals["Action"])
    if vals["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        fail("algorithm %r" % vals["X-Amz-Algorithm"])
    if vals["X-Amz-Expires"] != "900":
        fail("X-Amz-Expires %r" % vals["X-Amz-Expires"])
    if vals["X-Amz-SignedHeaders"] != "host":
        fail("X-Amz-SignedHeaders %r" % vals["X-Amz-SignedHeaders"])
    if session_token and vals["X-Amz-Security-Token"] != session_token:
        fail("X-Amz-Security-Token differs from the session token")

    amz_date = vals["X-Amz-Date"]
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        fail("X-Amz-Date %r" % amz_date)
    signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    if a.sign_time is not None:
        if signed_at != a.sign_time:
            fail("X-Amz-Date %s is %d, expected %d" % (amz_date, signed_at,
                                                      a.sign_time))
    elif abs(signed_at - time.time()) > a.max_skew:
        fail("X-Amz-Date %s is not now" % amz_date)
    date = amz_date[:8]
    scope = "%s/%s/kafka-cluster/aws4_request" % (date, a.region)
    if vals["X-Amz-Credential"] != access_key + "/" + scope:
        fail("X-Amz-Credential %r" % vals["X-Amz-Credential"])

    signed = sorted((aws_quote(k), aws_quote(v)) for k, v in vals.items()
                    if k not in ("X-Amz-Signature", "User-Agent"))
    canonical_query = "&".join("%s=%s" % kv for kv in signed)
    creq = "\n".join(["GET", "/", canonical_query, "host:" + host, "",
                      "host", hashlib.sha256(b"").hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (date, a.region, "kafka-cluster", "aws4_request"):
        key = hmac256(key, part)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    if vals["X-Amz-Signature"] != sig:
        fail("signature %s, recomputed %s" % (vals["X-Amz-Signature"], sig))
    print("OK %s signed %s" % (host, amz_date))


if __name__ == "__main__":
    main()
