"""A fake Identity v2.0 server for stonegate's product tests (no current
Keystone serves v2.0). Every token document it returns is made by
keystoneauth's own fixture, keystoneauth1.fixture.V2Token.

Run with the harness venv's Python (it has keystoneauth1):

    python tests/product/fake_v2_keystone.py PASSWORD

It binds 127.0.0.1:0 and prints `PORT <n>` on its first output line.

Identity v2.0:
  POST /v2.0/tokens          passwordCredentials of user `svc` with PASSWORD
                             (tenantName `service` or none): an admin token
                             whose catalog's identity endpoint is this server,
                             adminURL /admin/v2.0, internalURL /internal/v2.0,
                             publicURL /v2.0; anything else: 401.
  GET  <prefix>/tokens/<id>  needs a current admin token in X-Auth-Token (else
                             401); 200 with the token's document, 404 for
                             tokens it did not mint.
Test control (never in a real Keystone):
  POST /_test/tokens         {"user_id", "user_name", "tenant_id"?,
                             "tenant_name"?, "roles": [[name, id], ...],
                             "expires_in"? (seconds, may be negative),
                             "without_expiry"? (answer lacks token.expires)}: mints
                             a user token; answers {"id", "headers"} where
                             headers are the identity headers
                             keystonemiddleware's _request.py set for it.
  POST /_test/expire-admin   forgets every admin token (Keystone restarted):
                             the next validation with one answers 401.
  GET  /_test/log            every request so far: [{"method", "path"}].
"""

import datetime
import json
import sys
import threading
import types
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# keystoneauth1.fixture imports the test-only `fixtures` package for its
# LoadingFixture, not used here; a stand-in lets the package import.
if "fixtures" not in sys.modules:
    try:
        import fixtures  # noqa: F401
    except ImportError:
        stub = types.ModuleType("fixtures")
        stub.Fixture = object
        sys.modules["fixtures"] = stub

from keystoneauth1 import access  # noqa: E402
from keystoneauth1 import fixture  # noqa: E402

try:
    from oslo_serialization import jsonutils

    dumps = jsonutils.dumps
except ImportError:  # jsonutils.dumps is json.dumps with a default= hook
    dumps = json.dumps

PASSWORD = sys.argv[1]
LOCK = threading.Lock()
ADMIN_TOKENS = set()
USER_TOKENS = {}
LOG = []
BASE = None  # http://127.0.0.1:<port>
PREFIXES = ("/v2.0", "/internal/v2.0", "/admin/v2.0")


def kmw_headers(body):
    """The identity headers keystonemiddleware's _AuthTokenRequest set from
    this document: set_user_headers + set_service_catalog_headers, where a
    header set to None is removed (webob)."""
    ref = access.create(body=body)
    h = {}

    def put(name, value):
        if value is None:
            h.pop(name, None)
        else:
            h[name] = value

    put("X-Identity-Status", "Confirmed")
    put("X-Roles", ",".join(ref.role_names))
    put("OpenStack-System-Scope", "all" if ref.system_scoped else None)
    for name, attr in [
        ("X-Domain-Id", "domain_id"),
        ("X-Domain-Name", "domain_name"),
        ("X-Project-Id", "project_id"),
        ("X-Project-Name", "project_name"),
        ("X-Project-Domain-Id", "project_domain_id"),
        ("X-Project-Domain-Name", "project_domain_name"),
        ("X-User-Id", "user_id"),
        ("X-User-Name", "username"),
        ("X-User-Domain-Id", "user_domain_id"),
        ("X-User-Domain-Name", "user_domain_name"),
    ]:
        put(name, getattr(ref, attr))
    put("X-Is-Admin-Project", "True" if ref.is_admin_project else "False")
    for old, new in [
        ("X-Role", "X-Roles"),
        ("X-User", "X-User-Name"),
        ("X-Tenant-Id", "X-Project-Id"),
        ("X-Tenant-Name", "X-Project-Name"),
        ("X-Tenant", "X-Project-Name"),
    ]:
        put(old, h.get(new))
    if ref.has_service_catalog():
        put("X-Service-Catalog", dumps(ref.service_catalog.catalog))
    return h


def add_catalog(token):
    s = token.add_service("identity", name="keystone")
    s.add_endpoint(
        public=BASE + "/v2.0",
        admin=BASE + "/admin/v2.0",
        internal=BASE + "/internal/v2.0",
        region="RegionOne",
        tenant_id=token.tenant_id,
    )
    s = token.add_service("compute", name="nova")
    s.add_endpoint(
        public="http://nova.example/v2.1",
        internal="http://nova-int.example/v2.1",
        region="RegionOne",
        tenant_id=token.tenant_id,
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, doc=None):
        data = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def record(self):
        with LOCK:
            LOG.append({"method": self.command, "path": self.path})

    def do_POST(self):
        self.record()
        if self.path == "/v2.0/tokens":
            return self.authenticate(self.body())
        if self.path == "/_test/tokens":
            return self.mint(self.body())
        if self.path == "/_test/expire-admin":
            with LOCK:
                ADMIN_TOKENS.clear()
            return self.reply(204)
        self.reply(404)

    def do_GET(self):
        self.record()
        if self.path == "/_test/log":
            with LOCK:
                return self.reply(200, list(LOG))
        for prefix in PREFIXES:
            head = prefix + "/tokens/"
            if self.path.startswith(head):
                return self.validate(self.path[len(head):])
        self.reply(404)

    def authenticate(self, doc):
        auth = doc.get("auth", {})
        creds = auth.get("passwordCredentials", {})
        ok = (
            creds.get("username") == "svc"
            and creds.get("password") == PASSWORD
            and auth.get("tenantName", "service") == "service"
            and "tenantId" not in auth
        )
        if not ok:
            return self.reply(401, {"error": {"code": 401, "title": "Unauthorized"}})
        token = fixture.V2Token(
            tenant_id="service-tenant",
            tenant_name="service",
            user_id="svc-id",
            user_name="svc",
        )
        token.add_role(name="admin")
        token.add_role(name="service")
        add_catalog(token)
        with LOCK:
            ADMIN_TOKENS.add(token.token_id)
        self.reply(200, token)

    def mint(self, doc):
        token = fixture.V2Token(
            token_id=uuid.uuid4().hex,
            user_id=doc["user_id"],
            user_name=doc["user_name"],
            tenant_id=doc.get("tenant_id"),
            tenant_name=doc.get("tenant_name"),
            expires=datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            + datetime.timedelta(seconds=doc.get("expires_in", 3600)),
        )
        for name, role_id in doc.get("roles", []):
            token.add_role(name=name, id=role_id)
        if doc.get("tenant_id"):
            add_catalog(token)
        body = json.loads(json.dumps(token))
        headers = kmw_headers(body)
        if doc.get("without_expiry"):
            # A broken answer: keystoneauth itself could not read its expiry.
            del body["access"]["token"]["expires"]
        with LOCK:
            USER_TOKENS[token.token_id] = body
        self.reply(200, {"id": token.token_id, "headers": headers})

    def validate(self, token_id):
        with LOCK:
            admin_ok = self.headers.get("X-Auth-Token") in ADMIN_TOKENS
            body = USER_TOKENS.get(token_id)
        if not admin_ok:
            return self.reply(401, {"error": {"code": 401, "title": "Unauthorized"}})
        if body is None:
            return self.reply(404, {"error": {"code": 404, "title": "Not Found"}})
        self.reply(200, body)


def main():
    global BASE
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    BASE = "http://127.0.0.1:%d" % server.server_address[1]
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
