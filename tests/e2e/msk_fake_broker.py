#!/usr/bin/env python3
"""A fake Kafka broker that answers ApiVersions and SaslHandshake
(OAUTHBEARER) and prints the bearer token of the first SASL authenticate
request as token=..., then exits: enough to see what MSK would receive."""
import socket, struct, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8); s.settimeout(30)
print("bootstrap=127.0.0.1:%d" % s.getsockname()[1], flush=True)
def frame(c):
    h = b""
    while len(h) < 4:
        d = c.recv(4 - len(h))
        if not d: return None
        h += d
    n = struct.unpack(">i", h)[0]; b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: return None
        b += d
    return b
def resp(c, req, body): c.sendall(struct.pack(">i", 4 + len(body)) + req[4:8] + body)
av3 = bytes([0,0,3,0,17,0,0,0,1,0,0,36,0,0,0,1,0,0,0,0,0,0])
av0 = bytes([0,0,0,0,0,2,0,17,0,0,0,1,0,36,0,0,0,1])
hs = bytes([0,0,0,0,0,1,0,11]) + b"OAUTHBEARER"
while True:
    c, _ = s.accept()
    for _ in range(4):
        r = frame(c)
        if not r or len(r) < 8: break
        key, ver = struct.unpack(">hh", r[:4])
        i = r.find(b"auth=Bearer ")
        if i >= 0:
            print("token=" + r[i+12:].split(b"\x01")[0].decode(), flush=True); sys.exit(0)
        resp(c, r, (av3 if ver >= 3 else av0) if key == 18 else hs)
    c.close()
