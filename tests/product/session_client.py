"""A browser-style client of stonegate's sessions, written the way a Python
front end would: one requests.Session holding the cookies, the CSRF cookie
copied into X-CSRFToken on writes. Run by tests/product/session.rs:

    python session_client.py http://127.0.0.1:PORT   (DEMO_PASSWORD, DEMO_USER_ID in the env)
"""
import os
import sys

import requests

base = sys.argv[1].rstrip("/")
user_id = os.environ["DEMO_USER_ID"]


def check(cond, what, resp=None):
    if not cond:
        detail = f" ({resp.status_code}: {resp.text[:300]})" if resp is not None else ""
        sys.exit(f"FAILED: {what}{detail}")


s = requests.Session()
s.trust_env = False  # no proxies from the environment

r = s.post(f"{base}/authentication/login/",
           json={"username": "demo", "password": os.environ["DEMO_PASSWORD"],
                 "user_domain_name": "Default", "project_name": "demo"},
           timeout=30)
check(r.status_code == 200, "login", r)
check(r.json()["user"]["id"] == user_id, "login names the user", r)
check("sessionid" in s.cookies and "csrftoken" in s.cookies, "both cookies stored")
session_cookie = s.cookies["sessionid"]

r = s.get(f"{base}/v2.1/servers", timeout=30)
check(r.status_code == 200, "read with the session", r)
seen = {k: v[0] for k, v in r.json()["headers"].items()}
check(seen.get("x-user-id") == user_id, "upstream sees the user", r)
check(seen.get("x-identity-status") == "Confirmed", "confirmed identity", r)

r = s.post(f"{base}/v2.1/servers", json={"server": {"name": "vm"}}, timeout=30)
check(r.status_code == 403, "write without X-CSRFToken is refused", r)
# Its body was never read: the connection is closed after the answer, and said so.
check(r.headers.get("Connection", "").lower() == "close", "refusal with a body unread says Connection: close", r)

r = s.post(f"{base}/v2.1/servers", json={"server": {"name": "vm"}},
           headers={"X-CSRFToken": s.cookies["csrftoken"]}, timeout=30)
check(r.status_code == 200, "write with X-CSRFToken", r)
check(r.json()["method"] == "POST", "the write reached the upstream", r)

r = s.post(f"{base}/authentication/logout/",
           headers={"X-CSRFToken": s.cookies["csrftoken"]}, timeout=30)
check(r.status_code == 200 and r.json() == {"logout": True}, "logout", r)
check("sessionid" not in s.cookies and "csrftoken" not in s.cookies,
      "logout cleared the cookie jar")

r = s.get(f"{base}/v2.1/servers", timeout=30)
check(r.status_code == 401, "no session after logout", r)

replay = requests.Session()
replay.trust_env = False
r = replay.get(f"{base}/v2.1/servers", cookies={"sessionid": session_cookie}, timeout=30)
check(r.status_code == 401, "the old session cookie, replayed, is refused", r)
check(r.json()["error"]["code"] == 401, "401 body is JSON", r)

print("session flow ok")
