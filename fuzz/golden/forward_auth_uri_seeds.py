"""Seeds for the forward_auth_uri and canonical_path fuzz targets, recorded
from a real nginx: the X-Original-URI ($request_uri) and X-Original-URL
($scheme://$http_host$request_uri) values nginx's auth_request subrequest
carries, as the ingress-nginx configurations of deploy/ set them, for raw
request targets sent byte for byte (dot segments, encoded slashes and dots,
matrix parameters, doubled slashes, UTF-8, absolute-form targets).

    python3 fuzz/golden/forward_auth_uri_seeds.py   # rewrites fuzz/seeds/{forward_auth_uri,canonical_path}/nginx-*

Needs nginx (Debian: apt-get install nginx-light); any Python 3.
"""
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "..", "seeds")
SEEN = []

TARGETS = [
    b"/v2.1/servers?limit=10&marker=abc",
    b"/v2.1/servers/../flavors",
    b"/v2.1/%2e%2e/admin",
    b"/v2.1/servers%2F..%2Fadmin",
    b"/static/..;/v2.1/servers",
    b"/v2.1/servers;jsessionid=1/detail",
    b"//v2.1//servers/",
    b"/v2.1/servers/%E2%9C%93?name=%C3%A9",
    b"/v2.1/./servers/.",
    b"/v2.1/servers?next=/../admin#frag",
    b"/%252e%252e/x",
    b"/v2.1/servers/a%00b",
    b"http://compute.example.com/v2.1/servers?x=1",
]


class Recorder(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        SEEN.append((self.headers.get("X-Original-URI"), self.headers.get("X-Original-URL")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    recorder = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{port};
    server_name compute.example.com;
    location / {{ auth_request /_stonegate; root {d}; try_files /ok =404; }}
    location = /_stonegate {{
      internal;
      proxy_pass http://127.0.0.1:{recorder.server_address[1]};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
    }}
  }}
}}
""")
        open(os.path.join(d, "ok"), "w").close()
        proc = subprocess.Popen([nginx, "-p", d, "-c", conf])
        debug = os.path.join(d, "error.log")
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            for target in TARGETS:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: compute.example.com\r\n"
                              b"Connection: close\r\n\r\n")
                    reply = b""
                    while chunk := s.recv(4096):
                        reply += chunk
                    if os.environ.get("SEEDS_DEBUG"):
                        print(target, reply[:80])
        finally:
            if not SEEN and os.path.exists(debug):
                print(open(debug).read())
            proc.terminate()
            proc.wait(timeout=10)
    recorder.shutdown()

    for target_dir in ("forward_auth_uri", "canonical_path"):
        out = os.path.join(SEEDS, target_dir)
        for old in os.listdir(out):
            if old.startswith("nginx-"):
                os.remove(os.path.join(out, old))
    n = 0
    for uri, url in SEEN:
        for value, dirs in ((uri, ("forward_auth_uri", "canonical_path")), (url, ("forward_auth_uri",))):
            if not value:
                continue
            data = value.encode("latin-1")
            name = "nginx-" + hashlib.sha256(data).hexdigest()[:12]
            for target_dir in dirs:
                with open(os.path.join(SEEDS, target_dir, name), "wb") as f:
                    f.write(data)
                n += 1
    print(f"{n} seeds from {len(SEEN)} auth subrequests of {len(TARGETS)} requests")


main()
