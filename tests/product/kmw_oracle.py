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
    app = auth_token.filter_factory({}, **conf)(echo_app)
    httpd = simple_server.make_server("127.0.0.1", 0, app, server_class=Server,
                                      handler_class=QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"listening {httpd.server_port}", flush=True)
    # Serve until the test closes our stdin (or dies).
    sys.stdin.read()
    httpd.shutdown()


main()
