#!/usr/bin/env python3
"""Loopback stand-in for the AWS credential endpoints, for test_aws_credentials.

Plays STS AssumeRoleWithWebIdentity and AssumeRole (XML), the SSO portal's
GetRoleCredentials (JSON), the ECS/EKS container endpoint (JSON,
Authorization header checked) and IMDSv2 (token PUT, then GETs that must
carry the token). Prints "port=N tls_port=M cert=PATH" once listening (M
serves the same over HTTPS with the self-signed certificate PATH); serves
until stdin closes or it is killed. GET /stats answers request counts per path.

AssumeRole checks the request's SigV4 signature independently, with
botocore's signer (Debian's python3-botocore), against the secret of the
access key it names: the static source key below, or credentials this
server handed out earlier (role chaining), whose session token must then be
sent and signed too.
"""
import datetime
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

WEB_TOKEN = "web-identity-token-123"
ROLE_ARN = "arn:aws:iam::123456789012:role/es-test"
CONTAINER_AUTH = "Bearer container-secret"
IMDS_TOKEN = "imds-session-token"
SSO_TOKEN = "sso-access-token-abc"
SSO_ACCOUNT = "111122223333"
SSO_ROLE = "ReadOnly"
# access key id -> (secret, session token or None)
keys = {"AKIASOURCE": ("sourcesecret", None),
        "CONTAINERAKID": ("CONTAINERSECRET", "CONTAINERTOKEN")}
counts = {}
lock = threading.Lock()


class SignedHeaderAuth(SigV4Auth):
    """botocore's SigV4 signer, restricted to the headers the client signed."""

    def __init__(self, creds, service, region, signed):
        super().__init__(creds, service, region)
        self.signed = signed

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name in self.signed:
            for v in request.headers.get_all(name) or []:
                hm[name] = v
        return hm


def sts_error(code, message):
    return ("<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>"
            "<Message>%s</Message></Error></ErrorResponse>" % (code, message))


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

    def verify(self, body):
        """None when the SigV4 signature checks out, else an error code."""
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "MissingAuthenticationToken"
        parts = {}
        for item in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = item.strip().partition("=")
            parts[k] = v
        try:
            akid, _, region, service, _ = parts["Credential"].split("/")
        except (KeyError, ValueError):
            return "IncompleteSignature"
        signed = parts.get("SignedHeaders", "").split(";")
        with lock:
            key = keys.get(akid)
        if key is None or service != "sts":
            return "InvalidClientTokenId"
        secret, token = key
        if token is not None and (
                self.headers.get("x-amz-security-token") != token
                or "x-amz-security-token" not in signed):
            return "InvalidClientTokenId"
        req = AWSRequest(method=self.command,
                         url="http://%s%s" % (self.headers["Host"], self.path),
                         data=body.encode())
        for name in signed:
            for v in self.headers.get_all(name) or []:
                req.headers.add_header(name, v)
        req.context["timestamp"] = self.headers.get("x-amz-date", "")
        signer = SignedHeaderAuth(Credentials(akid, secret, token), service,
                                  region, signed)
        want = signer.signature(
            signer.string_to_sign(req, signer.canonical_request(req)), req)
        return None if want == parts.get("Signature") else \
            "SignatureDoesNotMatch"

    def assume_role(self, body, get):
        err = self.verify(body)
        if err:
            return self.reply(403, sts_error(err, "signature check failed"),
                              "text/xml")
        role = get("RoleArn").rsplit("/", 1)[-1]
        if role == "needs-external-id" and get("ExternalId") != "ext-123":
            return self.reply(403, sts_error("AccessDenied", "external id"),
                              "text/xml")
        with lock:
            counts["assumed " + role] = counts.get("assumed " + role, 0) + 1
            n = sum(1 for k in keys if k.startswith("ASIA"))
            akid = "ASIA%s%d" % (role.upper().replace("-", ""), n)
            cred = (secrets.token_hex(16), secrets.token_hex(24))
            keys[akid] = cred
        ttl = int(get("DurationSeconds") or 3600)
        xml = ("<AssumeRoleResponse><AssumeRoleResult><Credentials>"
               "<AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s"
               "</SecretAccessKey><SessionToken>%s</SessionToken>"
               "<Expiration>%s</Expiration></Credentials><AssumedRoleUser>"
               "<Arn>%s/%s</Arn></AssumedRoleUser></AssumeRoleResult>"
               "</AssumeRoleResponse>" %
               (akid, cred[0], cred[1], expiry(ttl), get("RoleArn"),
                get("RoleSessionName")))
        self.reply(200, xml, "text/xml")

    def do_POST(self):
        path = self.count()
        raw = self.body()
        form = urllib.parse.parse_qs(raw)
        get = lambda k: (form.get(k) or [""])[0]
        if path == "/sts" and get("Action") == "AssumeRole":
            return self.assume_role(raw, get)
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
        if path == "/sso/federation/credentials":
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            if self.headers.get("x-amz-sso_bearer_token") != SSO_TOKEN:
                return self.reply(401, '{"message":"Session token not found '
                                  'or invalid"}')
            if (q.get("account_id") != [SSO_ACCOUNT]
                    or q.get("role_name") != [SSO_ROLE]):
                return self.reply(403, '{"message":"No access"}')
            return self.reply(200, json.dumps({"roleCredentials": {
                "accessKeyId": "SSOAKID", "secretAccessKey": "SSOSECRET",
                "sessionToken": "SSOTOKEN",
                "expiration": int((time.time() + 3600) * 1000)}}))
        if path.startswith("/v2/credentials/"):
            if self.headers.get("Authorization") != CONTAINER_AUTH:
                return self.reply(401, "{}")
            ttl = {"short": 60, "expired": -120}.get(path.rsplit("/", 1)[1],
                                                     3600)
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
    tls, certdir = tls_server()
    print("port=%d tls_port=%d cert=%s" % (
        srv.server_address[1], tls.server_address[1],
        os.path.join(certdir, "cert.pem")), flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    # The test closes our stdin (or dies) to stop us, then sends SIGTERM: as
    # an exit, so that the certificate's directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sys.stdin.read()
    finally:
        shutil.rmtree(certdir, ignore_errors=True)


def tls_server():
    """The same endpoints over HTTPS, with a self-signed certificate made
    here (a private CA, as AWS_CA_BUNDLE is for)."""
    certdir = tempfile.mkdtemp(prefix="aws-creds-tls-")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", os.path.join(certdir, "key.pem"),
         "-out", os.path.join(certdir, "cert.pem"), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certdir, "cert.pem"),
                        os.path.join(certdir, "key.pem"))
    tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls.daemon_threads = True
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    return tls, certdir


if __name__ == "__main__":
    main()
