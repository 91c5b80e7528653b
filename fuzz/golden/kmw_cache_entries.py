"""Golden shared-cache entries written by keystonemiddleware's own cache code,
for the `shared_cache_entry` fuzz target (fuzz/golden/shared_cache_entries.json,
and one seed per entry in fuzz/seeds/shared_cache_entry/).

    KEYSTONE_URL=http://127.0.0.1:25357 \
      target/keystone/venv/bin/python fuzz/golden/kmw_cache_entries.py

Tokens are issued by the harness Keystone (tests/keystone/keystone-up.sh) and
validated there; each validation body is stored by keystonemiddleware 13.0.1's
SecureTokenCache (the class auth_token builds for memcache_security_strategy
MAC and ENCRYPT) into its in-process client, whose raw value is what
memcached would hold. Nothing here restates the format: the key, the MAC, the
encryption and the JSON serialisation are keystonemiddleware's.
"""
import json
import logging
import os
import pathlib

import requests
from keystonemiddleware.auth_token import _cache
from keystonemiddleware.auth_token import _memcache_crypt

HERE = pathlib.Path(__file__).resolve().parent
K = os.environ.get("KEYSTONE_URL", "http://127.0.0.1:25357") + "/v3"


def issue(user, password, scope=None):
    auth = {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}}
    if scope:
        auth["scope"] = scope
    r = requests.post(K + "/auth/tokens", json={"auth": auth}, timeout=30)
    r.raise_for_status()
    return r.headers["X-Subject-Token"]


def main():
    admin = issue("admin", "admin-pass", {"project": {"name": "admin", "domain": {"id": "default"}}})
    tokens = {
        "demo-project": issue("demo", "demo-pass", {"project": {"name": "demo", "domain": {"id": "default"}}}),
        "demo-unscoped": issue("demo", "demo-pass"),
        "admin-system": issue("admin", "admin-pass", {"system": {"all": True}}),
    }
    entries = []
    for strategy, secret in (("MAC", "s3cret-mac"), ("ENCRYPT", "an encryption secret ✓")):
        for name, token in tokens.items():
            r = requests.get(K + "/auth/tokens?nocatalog" if name == "demo-unscoped" else K + "/auth/tokens",
                             headers={"X-Auth-Token": admin, "X-Subject-Token": token}, timeout=30)
            r.raise_for_status()
            body = r.json()
            cache = _cache.SecureTokenCache(logging.getLogger("kmw"), strategy, secret, cache_time=300)
            cache.initialize({})  # no memcached_servers: kmw's in-process client
            cache.set(token, body)
            key, context = cache._get_cache_key(token)
            with cache._cache_pool.reserve() as client:
                value = client.cache[key][1]
            assert cache.get(token) == body
            entries.append({
                "name": f"{strategy.lower()}-{name}",
                "strategy": strategy,
                "secret": secret,
                "token": token,
                "key": key,
                "value": value.decode("ascii"),
                # The bytes keystonemiddleware protected (its JSON of the body).
                "data": _memcache_crypt.unprotect_data(context, value).decode("utf-8"),
                "user_id": body["token"]["user"]["id"],
            })
    (HERE / "shared_cache_entries.json").write_text(json.dumps(entries, indent=1) + "\n")
    seeds = HERE.parent / "seeds" / "shared_cache_entry"
    seeds.mkdir(parents=True, exist_ok=True)
    for i, e in enumerate(entries):
        # Selector byte (entry i, verbatim mode), then the stored value.
        (seeds / e["name"]).write_bytes(bytes([i * 4]) + e["value"].encode())
        # Round-trip mode: the document itself as the data to protect.
        (seeds / (e["name"] + "-data")).write_bytes(bytes([i * 4 + 1]) + bytes(16) + e["data"].encode())


if __name__ == "__main__":
    main()
