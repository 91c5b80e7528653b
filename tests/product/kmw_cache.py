"""keystonemiddleware's own SecureTokenCache reading and writing a real
memcached, for the shared-cache interop tests (tests/product/shared_cache.rs).

    python kmw_cache.py get|set HOST:PORT

TOKEN, SECRET and STRATEGY (MAC or ENCRYPT) come from the environment.
`get` prints what kmw's cache returns for TOKEN (JSON, or null); `set`
stores the JSON document read from standard input, as kmw's fetch_token
does after validating a token.

The cache object is handed to kmw the way its `cache` option (an object in
the WSGI environment) is: kmw calls get(key) and set(key, value, time=...),
exactly what python-memcached's client offers. This one speaks memcached's
text protocol itself (python-memcached is not in the harness venv) and stores
bytes with flags 0, as python-memcached does.
"""
import json
import logging
import os
import socket
import sys

from keystonemiddleware.auth_token import _cache


class Memcached:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.f = self.sock.makefile("rb")

    def get(self, key):
        self.sock.sendall(b"get " + key.encode() + b"\r\n")
        line = self.f.readline()
        if line == b"END\r\n":
            return None
        _, _key, _flags, size = line.split()
        value = self.f.read(int(size) + 2)[:-2]
        assert self.f.readline() == b"END\r\n"
        return value

    def set(self, key, value, time=0):
        self.sock.sendall(b"set %s 0 %d %d\r\n" % (key.encode(), time, len(value))
                          + value + b"\r\n")
        assert self.f.readline() == b"STORED\r\n"
        return True


def main():
    op, addr = sys.argv[1], sys.argv[2]
    cache = _cache.SecureTokenCache(
        logging.getLogger("kmw"), os.environ["STRATEGY"], os.environ["SECRET"],
        cache_time=300, env_cache_name="test.cache")
    cache.initialize({"test.cache": Memcached(addr)})
    token = os.environ["TOKEN"]
    if op == "get":
        print(json.dumps(cache.get(token)))
    elif op == "set":
        cache.set(token, json.load(sys.stdin))
        print("stored")
    else:
        sys.exit(f"unknown operation {op}")


main()
