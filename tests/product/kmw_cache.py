"""keystonemiddleware's own token cache reading and writing real memcached
servers, for the shared-cache interop tests (tests/product/shared_cache.rs).

    python kmw_cache.py get|set|home HOST:PORT[,HOST:PORT...]

TOKEN, SECRET and STRATEGY (MAC or ENCRYPT) come from the environment.
`get` prints what kmw's cache returns for TOKEN (JSON, or null); `set`
stores the JSON document read from standard input, as kmw's fetch_token
does after validating a token. `home` reads tokens from standard input, one
a line, and prints for each the index (in the list given) of the server
python-memcached stores its entry on now: a server that refuses connections
is skipped as python-memcached skips it.

This is keystonemiddleware's SecureTokenCache as auth_token builds it from
memcached_servers with memcache_use_advanced_pool = false (its _CachePool of
python-memcached Clients; the default advanced pool, oslo.cache's wrapper
around the same Client, spins on "'MemcacheClientPool' object has no
attribute 'queue'" with the oslo.cache pinned in the harness venv): the key
derivation, the protection and the choice of server (python-memcached's
CRC32 hash, and its rehash past a dead server) are all the reference's. python-memcached is not in the
harness venv; scripts/test.sh installs it into target/py-oracles
(tests/keystone/oracle-requirements.txt), which the tests put on PYTHONPATH.
"""
import json
import logging
import os
import sys

from keystonemiddleware.auth_token import _cache
from keystonemiddleware.auth_token import _opts

import memcache  # python-memcached (fail here if it is missing)


def main():
    op, servers = sys.argv[1], sys.argv[2].split(",")
    defaults = {o.dest: o.default for o in _opts._OPTS}
    cache = _cache.SecureTokenCache(
        logging.getLogger("kmw"), os.environ["STRATEGY"], os.environ["SECRET"],
        cache_time=300, memcached_servers=servers,
        use_advanced_pool=False,
        dead_retry=defaults["memcache_pool_dead_retry"],
        socket_timeout=defaults["memcache_pool_socket_timeout"])
    cache.initialize({})
    if op == "home":
        client = memcache.Client(servers, dead_retry=300, socket_timeout=1)
        for token in sys.stdin.read().split():
            key, _ = cache._get_cache_key(token)
            # As Client.get does: the key encoded, then hashed to a server.
            server, _ = client._get_server(client._encode_key(key))
            print(client.servers.index(server) if server else "none")
        return
    token = os.environ["TOKEN"]
    if op == "get":
        print(json.dumps(cache.get(token)))
    elif op == "set":
        cache.set(token, json.load(sys.stdin))
        print("stored")
    else:
        sys.exit(f"unknown operation {op}")


main()
