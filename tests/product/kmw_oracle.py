"""The reference for stonegate's identity headers: the real
keystonemiddleware (the version pinned in the harness venv) as WSGI
middleware in front of an echo app, for the differential tests
(tests/product/kmw_differential.rs).

    python kmw_oracle.py OPTIONS_JSON

OPTIONS_JSON is the `[keystone_authtoken]` section as a JSON object
(auth_url, username, project_name, include_service_catalog, ...) exactly as
paste.deploy would hand it to `keystonemiddleware.auth_token.filter_factory`;
the password comes from the environment (KMW_PASSWORD), never the command
line. memcached_servers is never set: keystonemiddleware then caches in the
process (and not at all with token_cache_time = -1).

Identity v2.0 (`auth_version` 2 / 2.0 / v2.0): keystonemiddleware 13.0.1
still reads v2.0 token documents end to end (keystoneauth's AccessInfoV2:
expiry, service-token roles, bind, the headers, the catalog), but since
8.0.0 (Ussuri, "Remove v2.0 functionality") it only fetches them with
`GET /v3/auth/tokens`. `restore_v2_fetch` gives it back that one step as
releases up to 7.x had it (the `interface` option honoured, as 13.0.1's
v3 strategy does): a request strategy whose `verify_token` is
python-keystoneclient's v2.0 `tokens.validate_access_info` on
keystonemiddleware's own adapter (so `GET {identity endpoint}/tokens/{id}`
with its service token), returned as `{"access": ...}`. Everything around
that call is 13.0.1's code, unchanged.

The server binds 127.0.0.1:0, prints `listening PORT` on stdout and serves
until stdin closes (so it never outlives the test that started it). The echo
app answers 200 with a JSON document of what keystonemiddleware handed it:
{"method", "path", "query", "body_bytes", "headers": {name: value}}, where
`name` is the header name in lower case with `-` (from the WSGI `HTTP_*`
key) and `value` is the string keystonemiddleware put in the environment,
UTF-8 encoded then base64'd so the comparison is byte for byte. A header
keystonemiddleware set to None (it does so for absent values) is reported
as absent: a WSGI app reading the environment gets no value either.
"""
import base64
import json
import logging
import os
import socketserver
import sys
import threading
from wsgiref import simple_server

from keystonemiddleware import auth_token
from keystonemiddleware.auth_token import _exceptions as ksm_exceptions
from keystonemiddleware.auth_token import _identity


def echo_app(environ, start_response):
    headers = {}
    for key, value in environ.items():
        if not key.startswith("HTTP_") or value is None:
            continue
        name = key[5:].lower().replace("_", "-")
        headers[name] = base64.b64encode(value.encode("utf-8")).decode("ascii")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    doc = {
        "method": environ["REQUEST_METHOD"],
        "path": environ.get("PATH_INFO", ""),
        "query": environ.get("QUERY_STRING", ""),
        "body_bytes": len(body),
        "headers": headers,
    }
    out = json.dumps(doc).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


def restore_v2_fetch():
    """The v2.0 token fetch keystonemiddleware 13.0.1 lacks (see above)."""
    from keystoneclient.v2_0 import client as v2_client

    class V2RequestStrategy(_identity._RequestStrategy):
        AUTH_VERSION = (2, 0)

        def __init__(self, adap, **kwargs):
            super().__init__(adap, **kwargs)
            # The `interface` option as 13.0.1's v3 strategy passes it
            # (7.x's v2 client always asked the adminURL).
            args = {"session": adap}
            if self._requested_auth_interface:
                args["interface"] = self._requested_auth_interface
            self._client = v2_client.Client(**args)

        def verify_token(self, token, allow_expired=False):
            # v2.0 has no allow_expired: the document is what it is.
            auth_ref = self._client.tokens.validate_access_info(token)
            if not auth_ref:
                raise ksm_exceptions.InvalidToken("no token data")
            return {"access": auth_ref}

    _identity.IdentityServer._get_strategy_class = lambda self: V2RequestStrategy


class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    conf = json.loads(sys.argv[1])
    def text(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return ",".join(v)
        return str(v)
    conf = {k: text(v) for k, v in conf.items()}
    conf["password"] = os.environ["KMW_PASSWORD"]
    assert "memcached_servers" not in conf, "the oracle keeps its own memcache off"
    if conf.get("auth_version", "").lstrip("v").startswith("2"):
        restore_v2_fetch()
    app = auth_token.filter_factory({}, **conf)(echo_app)
    httpd = simple_server.make_server("127.0.0.1", 0, app, server_class=Server,
                                      handler_class=QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"listening {httpd.server_port}", flush=True)
    # Serve until the test closes our stdin (or dies).
    sys.stdin.read()
    httpd.shutdown()


main()
