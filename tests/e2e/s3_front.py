#!/usr/bin/env python3
"""Verifying front for s3rver, used by the S3 sink tests.

s3rver stores objects and does multipart, but checks no signatures and
ignores If-None-Match. This front sits between the sink and s3rver and does
what S3 would:
  - recomputes every request's SigV4 signature independently with botocore
    (Debian's python3-botocore) and answers 403 SignatureDoesNotMatch on a
    mismatch, 403 InvalidAccessKeyId for an unknown key, 400
    XAmzContentSHA256Mismatch when the body does not hash to the signed
    x-amz-content-sha256, and 403 for a wrong or missing session token;
  - implements If-None-Match: * on PutObject and CompleteMultipartUpload
    (412 PreconditionFailed when the key exists);
  - accepts virtual-hosted requests (Host: BUCKET.localhost:PORT) and
    forwards them path-style.
Everything else is proxied to an s3rver child it starts itself.

Test controls (unsigned, never forwarded):
  POST /__front/fail?complete_error=N   next N CompleteMultipartUpload
                                        answer 200 with an <Error> body
  POST /__front/fail?put_500=N          next N PutObject/UploadPart get 500
  GET  /__front/stats                   JSON counters

Prints "port=N" when ready (after "tls_port=N" with --tls-cert: a second
listener speaking HTTPS to the same store); stops (and stops s3rver) on
SIGTERM/SIGINT or when stdin reaches EOF with --stdin-lifetime.
"""
import argparse
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.compat import HTTPHeaders

ARGS = None
S3RVER_PORT = 0
cond_lock = threading.Lock()  # serialises If-None-Match check + write
ctl = {"complete_error": 0, "put_500": 0}
stats = {"requests": 0, "sig_ok": 0, "sig_bad": 0, "precondition_failed": 0,
         "puts": 0, "parts": 0, "completes": 0, "aborts": 0}
stats_lock = threading.Lock()


def bump(name, n=1):
    with stats_lock:
        stats[name] = stats.get(name, 0) + n


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def error_xml(code, message):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s"
            "</Code><Message>%s</Message></Error>" % (code, message)).encode()


class SignedHeaderAuth(S3SigV4Auth):
    """botocore's S3 signer, restricted to the headers the client signed."""

    def __init__(self, creds, region, signed):
        super().__init__(creds, "s3", region)
        self.signed = signed

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name in self.signed:
            for v in request.headers.get_all(name) or []:
                hm[name] = v
        return hm


def parse_auth(value):
    if not value or not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    parts = {}
    for item in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = item.strip().partition("=")
        parts[k] = v
    try:
        akid, date, region, service, term = parts["Credential"].split("/")
    except (KeyError, ValueError):
        return None
    return {"akid": akid, "date": date, "region": region, "service": service,
            "signed": parts.get("SignedHeaders", "").split(";"),
            "signature": parts.get("Signature", "")}


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if ARGS.verbose:
            sys.stderr.write("s3_front: " + (fmt % args) + "\n")

    def reply(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def verify(self, body):
        """None when the signature checks out, else (status, code, msg)."""
        auth = parse_auth(self.headers.get("Authorization"))
        if auth is None:
            return 403, "AccessDenied", "request is not SigV4-signed"
        if auth["akid"] != ARGS.access_key:
            return 403, "InvalidAccessKeyId", "unknown access key"
        if auth["region"] != ARGS.region or auth["service"] != "s3":
            return 400, "AuthorizationHeaderMalformed", "wrong region/service"
        for need in ("host", "x-amz-date", "x-amz-content-sha256"):
            if need not in auth["signed"]:
                return 403, "AccessDenied", need + " is not signed"
        amz_date = self.headers.get("x-amz-date", "")
        try:
            t = time.mktime(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
            if abs(t - time.mktime(time.gmtime())) > 900:
                return 403, "RequestTimeTooSkewed", "clock skew"
        except ValueError:
            return 403, "AccessDenied", "bad x-amz-date"
        if ARGS.session_token is not None and self.headers.get(
                "x-amz-security-token") != ARGS.session_token:
            return 403, "InvalidToken", "missing or wrong session token"
        if ARGS.session_token and "x-amz-security-token" not in auth["signed"]:
            return 403, "AccessDenied", "x-amz-security-token is not signed"
        sha = self.headers.get("x-amz-content-sha256", "")
        if sha != "UNSIGNED-PAYLOAD" and sha != hashlib.sha256(body).hexdigest():
            return 400, "XAmzContentSHA256Mismatch", "body hash mismatch"
        req = AWSRequest(method=self.command,
                         url="http://%s%s" % (self.headers["Host"], self.path),
                         data=body)
        for name in auth["signed"]:
            vals = self.headers.get_all(name) or []
            for v in vals:
                req.headers.add_header(name, v)
        req.context["timestamp"] = amz_date
        signer = SignedHeaderAuth(
            Credentials(ARGS.access_key, ARGS.secret_key), ARGS.region,
            auth["signed"])
        canonical = signer.canonical_request(req)
        sts = signer.string_to_sign(req, canonical)
        want = signer.signature(sts, req)
        if want != auth["signature"]:
            if ARGS.verbose:
                sys.stderr.write("s3_front: mismatch; canonical request:\n%s\n"
                                 % canonical)
            return 403, "SignatureDoesNotMatch", (
                "The request signature we calculated does not match the "
                "signature you provided. Check your key and signing method.")
        return None

    def split(self):
        """(bucket, key, query) from path-style or virtual-hosted form."""
        u = urllib.parse.urlsplit(self.path)
        host = (self.headers.get("Host") or "").split(":")[0]
        path = u.path
        if host.endswith(".localhost"):
            path = "/" + host[:-len(".localhost")] + path
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key, u.query, path

    def control(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/__front/stats":
            with stats_lock:
                return self.reply(200, json.dumps(stats).encode())
        for k, v in urllib.parse.parse_qsl(u.query):
            ctl[k] = int(v)
        self.reply(200, b"ok")

    def forward(self, method, path, query, body):
        conn = http.client.HTTPConnection("127.0.0.1", S3RVER_PORT, timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("authorization", "host", "expect",
                                        "x-amz-security-token",
                                        "if-none-match", "connection")}
        headers["Host"] = "127.0.0.1:%d" % S3RVER_PORT
        conn.request(method, path + ("?" + query if query else ""),
                     body=body if body else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, resp.getheaders(), data

    def exists(self, path):
        status, _, _ = self.forward("HEAD", path, "", b"")
        return status == 200

    def handle_any(self):
        if self.path.startswith("/__front/"):
            return self.control()
        bump("requests")
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        bad = self.verify(body)
        if bad:
            bump("sig_bad")
            return self.reply(bad[0], error_xml(bad[1], bad[2]),
                              {"Content-Type": "application/xml"})
        bump("sig_ok")
        bucket, key, query, path = self.split()
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        is_put = self.command == "PUT" and key and "uploadId" not in q
        is_part = self.command == "PUT" and "uploadId" in q
        is_complete = self.command == "POST" and "uploadId" in q
        if self.command == "DELETE" and "uploadId" in q:
            bump("aborts")
        if (is_put or is_part) and ctl["put_500"] > 0:
            ctl["put_500"] -= 1
            return self.reply(500, error_xml("InternalError", "injected"))
        conditional = (is_put or is_complete) and \
            self.headers.get("If-None-Match") == "*"
        with cond_lock if conditional else NoLock():
            if conditional and self.exists(path):
                bump("precondition_failed")
                return self.reply(412, error_xml(
                    "PreconditionFailed", "At least one of the pre-"
                    "conditions you specified did not hold"))
            if is_complete and ctl["complete_error"] > 0:
                ctl["complete_error"] -= 1
                return self.reply(200, error_xml(
                    "InternalError", "injected: complete failed after 200"),
                    {"Content-Type": "application/xml"})
            status, headers, data = self.forward(self.command, path, query,
                                                 body)
        if status < 300:
            bump("puts" if is_put else "parts" if is_part else
                 "completes" if is_complete else "other")
        keep = {k: v for k, v in headers
                if k.lower() in ("etag", "content-type", "last-modified",
                                 "x-amz-version-id")}
        self.reply(status, data, keep)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main():
    global ARGS, S3RVER_PORT
    ap = argparse.ArgumentParser()
    ap.add_argument("--s3rver", required=True, help="path to s3rver bin")
    ap.add_argument("--data", required=True, help="s3rver data directory")
    ap.add_argument("--bucket", action="append", default=[])
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--session-token", default=None)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stdin-lifetime", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--tls-cert", help="also serve HTTPS with this cert")
    ap.add_argument("--tls-key", help="the key of --tls-cert")
    ARGS = ap.parse_args()

    S3RVER_PORT = free_port()
    cmd = [ARGS.s3rver, "-d", ARGS.data, "-a", "127.0.0.1", "-p",
           str(S3RVER_PORT), "--silent"]
    for b in ARGS.bucket:
        cmd += ["--configure-bucket", b]
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL)

    def stop(*_):
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", S3RVER_PORT), 0.2).close()
            break
        except OSError:
            if child.poll() is not None:
                sys.stderr.write("s3_front: s3rver exited\n")
                sys.exit(1)
            time.sleep(0.05)
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Front)
    srv.daemon_threads = True
    if ARGS.tls_cert:
        tls = ThreadingHTTPServer(("127.0.0.1", 0), Front)
        tls.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        threading.Thread(target=tls.serve_forever, daemon=True).start()
        print("tls_port=%d" % tls.server_address[1], flush=True)
    print("port=%d" % srv.server_address[1], flush=True)
    if ARGS.stdin_lifetime:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        sys.stdin.read()
        stop()
    srv.serve_forever()


if __name__ == "__main__":
    main()
