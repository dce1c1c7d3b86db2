#!/usr/bin/env python3
"""Scriptable TLS webhook receiver for the HTTPS sink tests (stdlib only).

    server.py CERTDIR        (certificates from mkcerts.sh)

Serves two TLS listeners on 127.0.0.1 sharing one state: a normal one and one
that requires a client certificate signed by the test CA (mTLS). Prints one
JSON line {"port": P, "mtls_port": Q} once both listen, then serves until
killed.

Control (on either port):
  POST /_ctl/config   JSON merged into the behaviour; {"reset": true} first
                      restores defaults and forgets everything received.
  GET  /_ctl/state    JSON: requests (summaries), accepted {id: count},
                      token_fetches, options (handshake requests).
  POST /_ctl/revoke   invalidates every OAuth2 token issued so far.
  POST /oauth/token   OAuth2 client-credentials token endpoint.
  OPTIONS *           CloudEvents webhook validation handshake.
  POST anything else  a delivery.

Signatures are checked here with Python's hmac, independently of the plugin.
"""
import base64
import gzip
import hashlib
import hmac
import http.server
import json
import os
import ssl
import sys
import threading
import time

LOCK = threading.Lock()


def defaults():
    return {
        "script": [],          # responses for the next deliveries, in order
        "reject_marker": None,  # a body containing it is answered 400
        "delay_ms": 0,          # added to every delivery
        "gone": False,          # answer 410 to every delivery
        "secrets": [],          # whsec_ secrets the signatures must match
        "bearer": False,        # require a token from /oauth/token
        "basic": None,          # "user:password" required
        "oauth_client": "client-id:client-secret",
        "token_ttl": 3600,
        "allow_origin": None,   # WebHook-Allowed-Origin to answer OPTIONS
        "allow_rate": None,     # WebHook-Allowed-Rate to answer it with
    }


CFG = defaults()
STATE = {}


def reset_state():
    STATE.update(requests=[], accepted={}, token_fetches=0, options=[],
                 tokens=set(), next_token=1)


reset_state()


def verify_signature(headers, body):
    """Standard Webhooks: v1,<b64 HMAC-SHA256(key, id.ts.body)>."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature", "").split()
    if not msg_id or not ts or not sigs:
        return False
    if abs(time.time() - int(ts)) > 300:
        return False
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    given = {s.split(",", 1)[1] for s in sigs if s.startswith("v1,")}
    for secret in CFG["secrets"]:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        want = base64.b64encode(
            hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if not any(hmac.compare_digest(want, g) for g in given):
            return False
    return True


def event_ids(ctype, headers, body):
    try:
        if ctype.startswith("application/cloudevents-batch+json"):
            return [e.get("id") for e in json.loads(body)]
        if ctype.startswith("application/cloudevents+json"):
            return [json.loads(body).get("id")]
    except (ValueError, AttributeError):
        return []
    return [headers["ce-id"]] if "ce-id" in headers else []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path != "/_ctl/state":
            return self.reply(404)
        with LOCK:
            out = {k: v for k, v in STATE.items() if k != "tokens"}
            body = json.dumps(out)
        self.reply(200, body, {"Content-Type": "application/json"})

    def do_OPTIONS(self):
        with LOCK:
            STATE["options"].append({k.lower(): v for k, v in
                                     self.headers.items()})
            allow = CFG["allow_origin"]
            rate = CFG["allow_rate"]
        origin = self.headers.get("WebHook-Request-Origin")
        if allow is None or not origin:
            return self.reply(405)
        headers = {"WebHook-Allowed-Origin": allow, "Allow": "POST"}
        if rate is not None:
            headers["WebHook-Allowed-Rate"] = rate
        self.reply(200, "", headers)

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/_ctl/config":
            cfg = json.loads(raw or b"{}")
            with LOCK:
                if cfg.pop("reset", False):
                    CFG.clear()
                    CFG.update(defaults())
                    reset_state()
                CFG.update(cfg)
            return self.reply(204)
        if self.path == "/_ctl/revoke":
            with LOCK:
                STATE["tokens"].clear()
            return self.reply(204)
        if self.path == "/oauth/token":
            return self.token(raw)
        return self.delivery(raw)

    def token(self, raw):
        auth = self.headers.get("Authorization", "")
        want = "Basic " + base64.b64encode(
            CFG["oauth_client"].encode()).decode()
        form = dict(p.split("=", 1) for p in raw.decode().split("&") if p)
        if auth != want or form.get("grant_type") != "client_credentials":
            return self.reply(401, '{"error":"invalid_client"}')
        with LOCK:
            tok = "tok-%d" % STATE["next_token"]
            STATE["next_token"] += 1
            STATE["tokens"].add(tok)
            STATE["token_fetches"] += 1
            ttl = CFG["token_ttl"]
        self.reply(200, json.dumps({"access_token": tok, "expires_in": ttl,
                                    "token_type": "Bearer"}),
                   {"Content-Type": "application/json"})

    def auth_ok(self):
        auth = self.headers.get("Authorization", "")
        if CFG["basic"]:
            return auth == "Basic " + base64.b64encode(
                CFG["basic"].encode()).decode()
        if CFG["bearer"]:
            return auth.startswith("Bearer ") and \
                auth[7:] in STATE["tokens"]
        return True

    def delivery(self, raw):
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = raw
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(raw)
        ctype = headers.get("content-type", "")
        ids = event_ids(ctype, headers, body)
        with LOCK:
            step = CFG["script"].pop(0) if CFG["script"] else {}
            sig_ok = verify_signature(headers, body) if CFG["secrets"] \
                else None
            if not self.auth_ok():
                status, text = 401, "unauthorized"
            elif CFG["gone"]:
                status, text = 410, "this webhook was deleted"
            elif step.get("status"):
                status, text = step["status"], step.get("body", "scripted")
            elif CFG["reject_marker"] and \
                    CFG["reject_marker"].encode() in body:
                status, text = 400, "rejected: marked event"
            elif sig_ok is False:
                status, text = 403, "bad signature"
            else:
                status, text = 200, "ok"
            delay = step.get("delay_ms", CFG["delay_ms"])
            STATE["requests"].append({
                "t": time.monotonic(), "path": self.path, "status": status,
                "content_type": ctype, "ids": ids, "sig_ok": sig_ok,
                "headers": headers, "raw_len": len(raw),
                "body": body.decode("utf-8", "replace")})
        if delay:
            time.sleep(delay / 1000.0)
        if 200 <= status < 300:
            with LOCK:
                for i in ids:
                    STATE["accepted"][i] = STATE["accepted"].get(i, 0) + 1
        self.reply(status, text, step.get("headers"))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ctx):
        super().__init__(("127.0.0.1", 0), Handler)
        self.ctx = ctx

    def get_request(self):
        sock, addr = self.socket.accept()
        # handshake in the handler thread: a stuck client blocks no one
        return self.ctx.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass  # failed TLS handshakes are expected in the tests


def main():
    certs = sys.argv[1]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certs, "server.pem"),
                        os.path.join(certs, "server.key"))
    mctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mctx.load_cert_chain(os.path.join(certs, "server.pem"),
                         os.path.join(certs, "server.key"))
    mctx.verify_mode = ssl.CERT_REQUIRED
    mctx.load_verify_locations(os.path.join(certs, "ca.pem"))
    servers = [Server(ctx), Server(mctx)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(json.dumps({"port": servers[0].server_address[1],
                      "mtls_port": servers[1].server_address[1]}),
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
