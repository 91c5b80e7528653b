"""Small Keystone REST helpers for stonegate's test harness (python-requests, every call with a timeout)."""

import json
import os
import sys

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.environ.get("HARNESS_RUN", os.path.join(HERE, "run"))
PORT = os.environ.get("KEYSTONE_PORT", "25357")
AUTH_URL = os.environ.get("OS_AUTH_URL", f"http://127.0.0.1:{PORT}/v3")
TIMEOUT = (3, 20)  # connect, read

ADMIN_PASSWORD = os.environ.get("KEYSTONE_ADMIN_PASSWORD", "admin-pass")
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "demo-pass")
SVC_PASSWORD = os.environ.get("SVC_PASSWORD", "svc-pass")

_session = requests.Session()


class KeystoneError(Exception):
    pass


def call(method, path, token=None, expect=(200, 201, 204), **kw):
    """One request against Keystone; returns the requests.Response."""
    headers = kw.pop("headers", {})
    if token:
        headers["X-Auth-Token"] = token
    url = path if path.startswith("http") else AUTH_URL + path
    r = _session.request(method, url, headers=headers, timeout=TIMEOUT, **kw)
    if expect and r.status_code not in expect:
        raise KeystoneError(f"{method} {path} -> {r.status_code}: {r.text[:500]}")
    return r


def password_identity(user, password, domain="Default"):
    return {
        "methods": ["password"],
        "password": {"user": {"name": user, "domain": {"name": domain}, "password": password}},
    }


def issue(identity, scope=None, expect=(201,)):
    """POST /v3/auth/tokens; returns (token, response)."""
    auth = {"identity": identity}
    if scope is not None:
        auth["scope"] = scope
    r = call("POST", "/auth/tokens", json={"auth": auth}, expect=expect)
    return r.headers.get("X-Subject-Token"), r


def project_scope(name, domain="Default"):
    return {"project": {"name": name, "domain": {"name": domain}}}


def system_scope():
    return {"system": {"all": True}}


def admin_system_token():
    tok, _ = issue(password_identity("admin", ADMIN_PASSWORD), system_scope())
    return tok


def svc_token():
    tok, _ = issue(password_identity("svc", SVC_PASSWORD), project_scope("service"))
    return tok


def load_fixtures():
    with open(os.path.join(RUN, "fixtures.json")) as f:
        return json.load(f)


def dump(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def eprint(*a):
    print(*a, file=sys.stderr, flush=True)
