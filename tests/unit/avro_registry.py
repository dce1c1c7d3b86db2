#!/usr/bin/python3
"""A small stand-in for a Confluent schema registry, for tests.

Serves GET /schemas/ids/{id} from DIR/{id}.avsc the way Confluent does:
200 {"schema": "<schema JSON as a string>"} or 404 {"error_code": 40403,
...}. A file DIR/{id}.status holding an HTTP status makes that id answer
with it (to test 5xx). GET /_hits/{id} returns how many times the id was
requested. Options: --delay-ms N (sleep before each schema answer, to make
concurrent fetches overlap), --auth USER:PASSWORD (basic auth required),
--port N (listen on N, e.g. to come back on the same port after a stop),
--tls CERT KEY (serve HTTPS).
Prints "port=N" on stdout once listening on 127.0.0.1.
"""
import argparse
import base64
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HITS = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "_hits":
            with LOCK:
                self.answer(200, {"hits": HITS.get(parts[1], 0)})
            return
        if srv.auth:
            want = "Basic " + base64.b64encode(srv.auth.encode()).decode()
            if self.headers.get("Authorization") != want:
                self.answer(401, {"error_code": 401, "message": "Unauthorized"})
                return
        if len(parts) != 3 or parts[:2] != ["schemas", "ids"]:
            self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
            return
        sid = parts[2]
        with LOCK:
            HITS[sid] = HITS.get(sid, 0) + 1
        if srv.delay:
            time.sleep(srv.delay)
        base = os.path.join(srv.dir, os.path.basename(sid))
        if os.path.exists(base + ".status"):
            with open(base + ".status") as f:
                status = int(f.read().strip())
            self.answer(status, {"error_code": status * 100, "message": "test"})
            return
        if not os.path.exists(base + ".avsc"):
            self.answer(404, {"error_code": 40403, "message": "Schema not found"})
            return
        with open(base + ".avsc") as f:
            text = f.read()
        self.answer(200, {"schema": json.dumps(json.loads(text))})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--auth", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = ap.parse_args()
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.dir = args.dir
    srv.delay = args.delay_ms / 1000.0
    srv.auth = args.auth
    print("port=%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
