"""Seeds for the access_rules, public_routes and session_cookie fuzz targets,
from a real Keystone (the harness's) and a real stonegate in front of it:

- access_rules: the access rules of an application credential as Keystone
  stores them and hands them back in the validation of a token the
  credential issued (GET /v3/auth/tokens with OpenStack-Identity-Access-Rules,
  as stonegate asks), each paired with request paths built from real ids (the
  project, the credential, the rule's own id): one the rule allows, one it
  does not.
- public_routes: the request targets python-requests writes on its request
  line (`PreparedRequest.path_url`, what http.client sends) for URLs a client
  builds from that token's catalog, Keystone's version document links and
  the access rules' paths filled in with the real ids.
- session_cookie: the sessions stonegate's login endpoint opens against the
  real Keystone (JSON and form logins, project-scoped and unscoped): the
  token stonegate sealed into the cookie (as the upstream received it in
  X-Auth-Token on a request that carried only the cookie), the csrftoken
  cookie, the user id the login answered, and the real sealed `sessionid`
  cookie as the replacement value (sealed with a key the target does not
  hold: it must never open).

    eval "$(tests/keystone/keystone-up.sh)"; cargo build --bin stonegate
    target/keystone/venv/bin/python fuzz/golden/keystone_seeds.py
    # rewrites fuzz/seeds/{access_rules,public_routes,session_cookie}/real-*

KEYSTONE_PORT / HARNESS_RUN as for keystone-up.sh; STONEGATE_BIN (default
target/debug/stonegate). Each seed is named after a hash of its bytes.
"""
import base64
import glob
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "keystone"))

import requests  # noqa: E402

import kslib  # noqa: E402
from kslib import AUTH_URL, DEMO_PASSWORD, SVC_PASSWORD, call, issue, password_identity, project_scope  # noqa: E402

SEEDS = os.path.join(HERE, "..", "seeds")
STONEGATE = os.environ.get("STONEGATE_BIN", os.path.join(REPO, "target", "debug", "stonegate"))

# Rules of the shapes Keystone's API reference and real deployments use: a
# `{tag}`, a `*` segment, a trailing `**`, a `**` in the middle, literal dots,
# a non-ASCII literal, the root.
RULES = [
    {"service": "compute", "method": "GET", "path": "/v2.1/servers/{server_id}"},
    {"service": "compute", "method": "POST", "path": "/v2.1/servers/*/action"},
    {"service": "image", "method": "GET", "path": "/v2/images/**"},
    {"service": "compute", "method": "GET", "path": "/v2.1/{project_id}/os-quota-sets/**/detail"},
    {"service": "compute", "method": "GET", "path": "/v2.1/servers.json"},
    {"service": "compute", "method": "GET", "path": "/v2.1/flavors/caf\u00e9-{flavor}"},
    {"service": "compute", "method": "GET", "path": "/"},
]
APPCRED = "stonegate-fuzz-seeds"


def write(target, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    name = "real-" + hashlib.sha256(data).hexdigest()[:12]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    return name


def clear(target):
    for p in glob.glob(os.path.join(SEEDS, target, "real-*")):
        os.remove(p)


def fill(pattern, ids):
    """A path the pattern allows: each `{tag}` / `*` a real id, `**` two segments."""
    out, i, n = [], 0, 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(f"{ids[n % len(ids)]}/detail")
            i += 2
        elif pattern[i] == "*":
            out.append(ids[n % len(ids)])
            i += 1
        elif pattern[i] == "{":
            end = pattern.index("}", i)
            out.append(ids[n % len(ids)])
            i = end + 1
        else:
            out.append(pattern[i])
            i += 1
            continue
        n += 1
    return "".join(out)


def access_rules_from_keystone():
    """(rules as the validated token carries them, project id, catalog, credential id)."""
    token, r = issue(password_identity("demo", DEMO_PASSWORD), project_scope("demo"))
    user_id = r.json()["token"]["user"]["id"]
    listing = call("GET", f"/users/{user_id}/application_credentials?name={APPCRED}", token).json()
    for old in listing["application_credentials"]:
        call("DELETE", f"/users/{user_id}/application_credentials/{old['id']}", token)
    created = call("POST", f"/users/{user_id}/application_credentials", token,
                   json={"application_credential": {"name": APPCRED, "access_rules": RULES}}).json()
    cred = created["application_credential"]
    ac_token, _ = issue({"methods": ["application_credential"],
                         "application_credential": {"id": cred["id"], "secret": cred["secret"]}})
    svc, _ = issue(password_identity("svc", SVC_PASSWORD), project_scope("service"))
    body = call("GET", "/auth/tokens", svc,
                headers={"X-Subject-Token": ac_token, "OpenStack-Identity-Access-Rules": "1"}).json()
    tok = body["token"]
    rules = tok["application_credential"]["access_rules"]
    # Keystone keeps a user's rules once and may hand them back in another order.
    assert sorted(x["path"] for x in rules) == sorted(x["path"] for x in RULES), rules
    call("DELETE", f"/users/{user_id}/application_credentials/{cred['id']}", token)
    return rules, tok["project"]["id"], tok.get("catalog", []), cred["id"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Echo(BaseHTTPRequestHandler):
    """The upstream: answers with the request headers it received."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def sessions_from_stonegate():
    """[(token, csrftoken, user id, sessionid)] for real logins through stonegate."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    listen, admin = free_port(), free_port()
    d = tempfile.mkdtemp(prefix="stonegate-seeds-")
    keys = os.path.join(d, "session-keys")
    with open(keys, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    config = os.path.join(d, "stonegate.toml")
    with open(config, "w") as f:
        f.write(f"""listen = "127.0.0.1:{listen}"
upstream = "http://127.0.0.1:{upstream.server_address[1]}"
admin_listen = "127.0.0.1:{admin}"
[keystone_authtoken]
auth_url = "{AUTH_URL}"
username = "svc"
user_domain_name = "Default"
project_name = "service"
project_domain_name = "Default"
service_type = "compute"
[session]
enabled = true
keys_file = "{keys}"
""")
    log = open(os.path.join(d, "stonegate.log"), "wb")
    proc = subprocess.Popen([STONEGATE, "serve", "--config", config], stdout=log, stderr=log,
                            env={**os.environ, "STONEGATE_PASSWORD": SVC_PASSWORD})
    base = f"http://127.0.0.1:{listen}"
    out = []
    try:
        for _ in range(100):
            try:
                if requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"stonegate exited; log: {log.name}")
            time.sleep(0.2)
        logins = [
            {"json": {"username": "demo", "password": DEMO_PASSWORD, "project_name": "demo"}},
            {"data": {"username": "demo", "password": DEMO_PASSWORD, "domain": "Default",
                      "project_name": "demo-alt", "project_domain_name": "demo-domain"}},
            {"json": {"username": "demo", "password": DEMO_PASSWORD, "user_domain_name": "Default"}},
        ]
        for kw in logins:
            s = requests.Session()
            s.trust_env = False
            r = s.post(f"{base}/authentication/login/", timeout=30, **kw)
            r.raise_for_status()
            seen = s.get(f"{base}/v2.1/servers", timeout=30)
            seen.raise_for_status()
            token = seen.json()["x-auth-token"]
            out.append((token, s.cookies["csrftoken"], r.json()["user"]["id"], s.cookies["sessionid"]))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        upstream.shutdown()
    return out


def main():
    rules, project_id, catalog, cred_id = access_rules_from_keystone()
    # access_rules: pattern NUL path.
    clear("access_rules")
    for rule in rules:
        ids = [project_id, rule.get("id", cred_id), cred_id]
        allowed = fill(rule["path"], ids)
        if rule["path"].endswith("**"):
            # Another first segment: outside the rule whatever follows.
            first = allowed.split("/")[1]
            denied = allowed.replace(f"/{first}", f"/{first}-{cred_id[:4]}", 1)
        else:
            denied = allowed.rstrip("/") + f"/{project_id}"
        for path in (allowed, denied):
            write("access_rules", f"{rule['path']}\0{path}".encode())

    # public_routes: the request line's target, as python-requests writes it.
    clear("public_routes")
    urls = []
    for service in catalog:
        for ep in service["endpoints"]:
            urls += [ep["url"], ep["url"].rstrip("/") + "/"]
    versions = requests.get(AUTH_URL.rsplit("/v3", 1)[0] + "/", timeout=20).json()
    for v in versions["versions"]["values"]:
        urls += [link["href"] for link in v["links"] if link.get("rel") == "self"]
    host = urlsplit(AUTH_URL).netloc
    urls += [f"http://{host}{fill(r['path'], [project_id, r.get('id', cred_id)])}?limit=10" for r in rules]
    urls += [f"http://{host}/v1/AUTH_{project_id}/info", f"http://{host}/image/{cred_id}/thumbnail",
             f"http://{host}{rules[0]['path']}"]
    targets = sorted({requests.Request("GET", u).prepare().path_url.split("?")[0] for u in urls})
    for t in targets:
        write("public_routes", t.encode())

    # session_cookie: token \1 csrf \1 user id \1 mutation \1 replacement.
    clear("session_cookie")
    for n, (token, csrf, user_id, cookie) in enumerate(sessions_from_stonegate()):
        # A byte position and an XOR mask (never the separator \x01).
        mutation = bytes([0x20 + 7 * n, 0x02 << (2 * n)]).decode()
        write("session_cookie", "\x01".join([token, csrf, user_id, mutation, cookie]).encode())
    for t in ("access_rules", "public_routes", "session_cookie"):
        print(t, len(glob.glob(os.path.join(SEEDS, t, "real-*"))), "seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
