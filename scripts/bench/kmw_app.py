"""Case f of scripts/bench.sh: keystonemiddleware's auth_token (the real PyPI
package, from the Keystone harness venv) around a trivial WSGI app that
answers 200 "ok" -- what a Python OpenStack service pays per request.

Run under gunicorn:  gunicorn --chdir scripts/bench kmw_app:application

Configuration from the environment (set by scripts/bench.sh):
  BENCH_KS_AUTH_URL      e.g. http://127.0.0.1:25357/v3
  BENCH_KS_USER / BENCH_KS_PROJECT / BENCH_KS_PASSWORD   the validating service account
No memcached_servers: keystonemiddleware uses its in-process token cache
(one per worker process), token_cache_time 300 s as stonegate.
"""

import logging
import os

from keystonemiddleware import auth_token

logging.basicConfig(level=logging.WARNING)


def ok(environ, start_response):
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


_conf = {
    "auth_type": "password",
    "auth_url": os.environ["BENCH_KS_AUTH_URL"],
    "www_authenticate_uri": os.environ["BENCH_KS_AUTH_URL"],
    "username": os.environ["BENCH_KS_USER"],
    "password": os.environ["BENCH_KS_PASSWORD"],
    "user_domain_name": "Default",
    "project_name": os.environ["BENCH_KS_PROJECT"],
    "project_domain_name": "Default",
    "interface": "internal",
    "delay_auth_decision": "false",
    "include_service_catalog": "false",
    "token_cache_time": "300",
    "http_connect_timeout": "5",
    "http_request_max_retries": "3",
}

application = auth_token.AuthProtocol(ok, _conf)
