#!/usr/bin/env python3
"""Loopback stand-in for the AWS credential endpoints, for test_aws_credentials.

Plays STS AssumeRoleWithWebIdentity (XML), the ECS/EKS container endpoint
(JSON, Authorization header checked) and IMDSv2 (token PUT, then GETs that
must carry the token). Prints "port=N" once listening; serves until stdin
closes or it is killed. GET /stats answers request counts per path.
"""
import datetime
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WEB_TOKEN = "web-identity-token-123"
ROLE_ARN = "arn:aws:iam::123456789012:role/es-test"
CONTAINER_AUTH = "Bearer container-secret"
IMDS_TOKEN = "imds-session-token"
counts = {}
lock = threading.Lock()


def expiry(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def creds_json(prefix, seconds):
    return json.dumps({
        "Code": "Success",
        "AccessKeyId": prefix + "AKID",
        "SecretAccessKey": prefix + "SECRET",
        "Token": prefix + "TOKEN",
        "Expiration": expiry(seconds),
    })


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else loopback requests crawl

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def count(self):
        path = urllib.parse.urlparse(self.path).path
        with lock:
            counts[self.command + " " + path] = counts.get(
                self.command + " " + path, 0) + 1
        return path

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode() if n else ""

    def do_POST(self):
        path = self.count()
        form = urllib.parse.parse_qs(self.body())
        get = lambda k: (form.get(k) or [""])[0]
        if path != "/sts" or get("Action") != "AssumeRoleWithWebIdentity":
            return self.reply(400, "<ErrorResponse><Error><Code>"
                              "InvalidAction</Code></Error></ErrorResponse>",
                              "text/xml")
        if get("WebIdentityToken") != WEB_TOKEN or get("RoleArn") != ROLE_ARN:
            return self.reply(403, "<ErrorResponse><Error><Code>"
                              "AccessDenied</Code></Error></ErrorResponse>",
                              "text/xml")
        xml = ("<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentity"
               "Result><Credentials><SessionToken>WEBTOKEN</SessionToken>"
               "<SecretAccessKey>WEBSECRET</SecretAccessKey><Expiration>%s"
               "</Expiration><AccessKeyId>WEBAKID-%s</AccessKeyId>"
               "</Credentials></AssumeRoleWithWebIdentityResult>"
               "</AssumeRoleWithWebIdentityResponse>" %
               (expiry(3600), get("RoleSessionName")))
        self.reply(200, xml, "text/xml")

    def do_PUT(self):
        path = self.count()
        self.body()
        if path == "/latest/api/token" and self.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, IMDS_TOKEN, "text/plain")
        self.reply(400, "{}")

    def do_GET(self):
        path = self.count()
        if path == "/stats":
            with lock:
                return self.reply(200, json.dumps(counts))
        if path.startswith("/v2/credentials/"):
            if self.headers.get("Authorization") != CONTAINER_AUTH:
                return self.reply(401, "{}")
            ttl = 60 if path.endswith("/short") else 3600
            return self.reply(200, creds_json("CONTAINER", ttl))
        if path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self.reply(401, "")
            role = path.rsplit("/", 1)[1]
            if not role:
                return self.reply(200, "es-instance-role\n", "text/plain")
            if role == "es-instance-role":
                return self.reply(200, creds_json("IMDS", 3600))
        self.reply(404, "{}")


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print("port=%d" % srv.server_address[1], flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdin.read()  # the test closes our stdin (or dies) to stop us


if __name__ == "__main__":
    main()
