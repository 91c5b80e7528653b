"""Seeds for the session_headers fuzz target, recorded from real clients:
the Cookie headers python-requests and curl send back after a server set
stonegate's cookies (and a Django/Horizon site's), the Host headers they
send, and the login bodies python-requests writes for a form (`data=`,
urllib's form encoding) and for JSON (`json=`, json.dumps with its \\u
escapes of non-ASCII and surrogate pairs).

    python fuzz/golden/session_headers_seeds.py   # rewrites fuzz/seeds/session_headers/real-*

Run with the harness venv's Python (it has requests); curl from the PATH.
A loopback server records every request head and body it receives; each
seed file is the target's input: a selector byte (0 Cookie, 1 Origin,
3 form body, 7 JSON body), then the fields separated by \\x01.
"""
import base64
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "seeds", "session_headers")
SEEN = []

# A value shaped as stonegate's seal (base64url: 0x01, key id, nonce,
# ciphertext+tag), and its csrftoken (hex); Django's and Horizon's cookies.
SEALED = base64.urlsafe_b64encode(b"\x01" + bytes(range(4 + 24 + 80))).rstrip(b"=").decode()
SET_COOKIES = [
    f"sessionid={SEALED}; Path=/; HttpOnly; SameSite=Lax",
    "csrftoken=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08; Path=/; SameSite=Lax",
    'login_region="http://keystone.example:5000/v3"; Path=/',
    "login_domain=Default; Path=/",
    "recent_project=3c5d2e1f0a9b48c7; Path=/",
]


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_one(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        SEEN.append((self.command, self.path, self.headers.get_all("Cookie") or [],
                     self.headers.get("Host"), self.headers.get("Content-Type"), body))
        self.send_response(200)
        if self.path == "/authentication/login/":
            for c in SET_COOKIES:
                self.send_header("Set-Cookie", c)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = handle_one


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    class V6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    server6 = V6(("::1", 0), Recorder)
    threading.Thread(target=server6.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{port}"

    s = requests.Session()
    s.trust_env = False
    form = {"region": "default", "domain": "Default", "username": "demo",
            "password": "p@ss w0rd&=+%/é", "csrfmiddlewaretoken": "Zx9", "next": "/project/"}
    s.post(f"{base}/authentication/login/", data=form, timeout=10)
    s.post(f"{base}/authentication/login/", timeout=10,
           json={"username": "Łukasz", "password": "pässwörd 🔑", "user_domain_name": "Default",
                 "project_name": "demo", "project_domain_id": "default"})
    s.post(f"{base}/authentication/login/", timeout=10,
           data={"username": "demo", "password": "x", "project_id": "3c5d2e1f0a9b48c7",
                 "user_domain_id": "default"})
    s.cookies.set("theme", "dark")
    s.get(f"{base}/v2.1/servers", timeout=10)

    with tempfile.TemporaryDirectory() as d:
        jar = os.path.join(d, "jar")
        curl = ["curl", "-sS", "-o", "/dev/null", "-b", jar, "-c", jar]
        subprocess.run(curl + ["--data-urlencode", "username=demo", "--data-urlencode",
                               "password=a b&c=d", f"{base}/authentication/login/"], check=True)
        subprocess.run(curl + [f"{base}/v2.1/servers"], check=True)
        # A second Cookie header, as a proxy in front may add one.
        subprocess.run(curl + ["-H", "Cookie: lang=en-US", f"{base}/v2.1/servers"], check=True)
        subprocess.run(["curl", "-sS", "-o", "/dev/null", "-g",
                        f"http://[::1]:{server6.server_address[1]}/"], check=True)
    s.get(f"http://localhost:{port}/", timeout=10)
    server.shutdown()
    server6.shutdown()

    seeds = {}

    def seed(kind, data):
        seeds[f"real-{kind}-{hashlib.sha256(data).hexdigest()[:12]}"] = data

    for method, path, cookies, host, ctype, body in SEEN:
        if cookies:
            seed("cookie", b"\x00" + "\x02".join(cookies).encode())
        if host:
            # The Origin a browser on that page sends (RFC 6454: scheme,
            # host, port), with the Host header the client sent.
            h, _, p = host.rpartition(":")
            seed("origin", b"\x01" + "\x01".join(["http", h, p, host]).encode())
        if method == "POST" and body:
            sel = b"\x07" if ctype == "application/json" else b"\x03"
            seed("login", sel + body)
    for old in os.listdir(OUT):
        if old.startswith("real-"):
            os.remove(os.path.join(OUT, old))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds from {len(SEEN)} requests", file=sys.stderr)


main()
