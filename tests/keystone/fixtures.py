"""Create (or find) the harness fixtures through Keystone's REST API, idempotently.

Writes $HARNESS_RUN/fixtures.json with every id and secret the stonegate
integration tests need (tests/product/). Run by keystone-up.sh.

  domain  demo-domain
  project demo      (Default)  user demo: member + reader
  project demo-alt  (demo-domain) user demo: member   (project domain != user domain)
  project service   (Default)  user svc:  service + admin  (stonegate's own account)
  domain  demo-domain          user demo: member           (domain-scoped tokens)
  user    revokee   (Default)  member on demo; tests revoke its tokens
  user    trustee   (Default)  no roles; trustee of the trust demo -> trustee (member on demo)
  app credentials of demo: "stonegate-appcred" (reader, unrestricted rules) and
          "stonegate-appcred-rules" (reader, access rule compute GET /v2.1/servers);
          of svc: "stonegate-svc-appcred" (service: stonegate's auth_type
          v3applicationcredential); recreated on every run (the secret is only
          shown at creation)
  admin (bootstrap) has admin on project admin and on system 'all'.
  user    svc-limited (Default) only `service` on project service: a service
          account that may validate tokens but not list other users' groups
  service "image" in the catalog (endpoint on port 9, nobody serves it): access
          rules naming two service types
  federation: identity provider "stonegate-idp" (no remote_ids), protocol
          "mapped", mapping "stonegate-mapping": the assertion header
          Stonegate-Federation-User (environ HTTP_STONEGATE_FEDERATION_USER,
          keystone.conf [federation] assertion_prefix) names an ephemeral user,
          put in groups "federated-viewers" and "federated-editors" (Default),
          which have `member` on project demo
"""

import os
import time

import kslib
from kslib import (ADMIN_PASSWORD, AUTH_URL, DEMO_PASSWORD, RUN, SVC_PASSWORD,
                   KeystoneError, admin_system_token, dump, eprint, issue,
                   password_identity, project_scope)

REVOKEE_PASSWORD = os.environ.get("REVOKEE_PASSWORD", "revokee-pass")
TRUSTEE_PASSWORD = os.environ.get("TRUSTEE_PASSWORD", "trustee-pass")

T0 = time.monotonic()
# A project-scoped admin token (admin on project "admin") is ~4x cheaper for
# Keystone to validate than a system-scoped one (system role lookups are not
# cached). Keystone 30's default policy lets it manage identity; if a policy
# says 403, fall back to the system-scoped token.
TOKEN, _ = issue(password_identity("admin", ADMIN_PASSWORD), project_scope("admin"))
SYSTEM = False


def call(method, path, token=None, **kw):
    global TOKEN, SYSTEM
    try:
        return kslib.call(method, path, TOKEN if token else None, **kw)
    except KeystoneError as e:
        if " -> 403" not in str(e) or SYSTEM or not token:
            raise
        eprint("  403 with the project-scoped admin token; using a system-scoped one")
        TOKEN, SYSTEM = admin_system_token(), True
        return kslib.call(method, path, TOKEN, **kw)


def find(collection, key, **filters):
    r = call("GET", f"/{collection}", TOKEN, params=filters)
    items = r.json()[key]
    return items[0] if items else None


def ensure(collection, key, body, **filters):
    """Return the entity matching filters, creating it with body if missing."""
    ent = find(collection, key, **filters)
    if ent is None:
        r = call("POST", f"/{collection}", TOKEN, json={key[:-1] if key.endswith("s") else key: body})
        ent = r.json()[key[:-1]]
        eprint(f"  created {collection[:-1]} {body.get('name')} {ent['id']}")
    else:
        eprint(f"  found   {collection[:-1]} {body.get('name')} {ent['id']}")
    return ent


def ensure_user(name, password, domain_id, default_project_id=None):
    body = {"name": name, "password": password, "domain_id": domain_id, "enabled": True}
    if default_project_id:
        body["default_project_id"] = default_project_id
    u = find("users", "users", name=name, domain_id=domain_id)
    if u is None:
        u = call("POST", "/users", TOKEN, json={"user": body}).json()["user"]
        eprint(f"  created user {name} {u['id']}")
    else:
        # Reset password / enabled only when they differ: a password change
        # makes Keystone revoke every token of the user.
        _, r = issue(password_identity(name, password), expect=None)
        if r.status_code == 201:
            eprint(f"  found   user {name} {u['id']}")
        else:
            call("PATCH", f"/users/{u['id']}", TOKEN, json={"user": {"password": password, "enabled": True}})
            eprint(f"  found   user {name} {u['id']} (password/enabled reset)")
    return u


def grant(target, target_id, user_id, role_id):
    call("PUT", f"/{target}/{target_id}/users/{user_id}/roles/{role_id}", TOKEN)


default = find("domains", "domains", name="Default")
assert default and default["id"] == "default", default
demo_domain = ensure("domains", "domains", {"name": "demo-domain", "description": "harness"}, name="demo-domain")
demo = ensure("projects", "projects",
              {"name": "demo", "domain_id": "default", "description": "harness demo project"},
              name="demo", domain_id="default")
demo_alt = ensure("projects", "projects",
                  {"name": "demo-alt", "domain_id": demo_domain["id"], "description": "harness"},
                  name="demo-alt", domain_id=demo_domain["id"])
service = ensure("projects", "projects",
                 {"name": "service", "domain_id": "default", "description": "service accounts"},
                 name="service", domain_id="default")
admin_project = find("projects", "projects", name="admin", domain_id="default")

roles = {}
for rname in ("admin", "manager", "member", "reader", "service"):
    r = find("roles", "roles", name=rname)
    if r is None:  # bootstrap makes all of them; be tolerant of older keystones
        r = ensure("roles", "roles", {"name": rname}, name=rname)
    roles[rname] = r["id"]

demo_user = ensure_user("demo", DEMO_PASSWORD, "default", demo["id"])
svc_user = ensure_user("svc", SVC_PASSWORD, "default", service["id"])
trustee = ensure_user("trustee", TRUSTEE_PASSWORD, "default")
revokee = ensure_user("revokee", REVOKEE_PASSWORD, "default", demo["id"])
admin_user = find("users", "users", name="admin", domain_id="default")

grant("projects", demo["id"], demo_user["id"], roles["member"])
grant("projects", demo["id"], demo_user["id"], roles["reader"])
grant("projects", demo_alt["id"], demo_user["id"], roles["member"])
grant("domains", demo_domain["id"], demo_user["id"], roles["member"])
grant("projects", service["id"], svc_user["id"], roles["service"])
grant("projects", service["id"], svc_user["id"], roles["admin"])
grant("projects", demo["id"], revokee["id"], roles["member"])
svc_limited = ensure_user("svc-limited", SVC_PASSWORD, "default", service["id"])
grant("projects", service["id"], svc_limited["id"], roles["service"])

# --- federation: an identity provider whose mapped users are ephemeral (no
# local group membership) and get their groups from the mapping.
fed_groups = {}
for gname in ("federated-viewers", "federated-editors"):
    g = ensure("groups", "groups", {"name": gname, "domain_id": "default"}, name=gname, domain_id="default")
    call("PUT", f"/projects/{demo['id']}/groups/{g['id']}/roles/{roles['member']}", TOKEN)
    fed_groups[gname] = g["id"]
IDP, PROTOCOL, MAPPING = "stonegate-idp", "mapped", "stonegate-mapping"
rules = [{
    "local": [{"user": {"name": "{0}"}}] + [{"group": {"id": gid}} for gid in fed_groups.values()],
    "remote": [{"type": "HTTP_STONEGATE_FEDERATION_USER"}],
}]
if call("GET", f"/OS-FEDERATION/mappings/{MAPPING}", TOKEN, expect=None).status_code == 404:
    call("PUT", f"/OS-FEDERATION/mappings/{MAPPING}", TOKEN, json={"mapping": {"rules": rules}})
else:
    call("PATCH", f"/OS-FEDERATION/mappings/{MAPPING}", TOKEN, json={"mapping": {"rules": rules}})
idp = call("GET", f"/OS-FEDERATION/identity_providers/{IDP}", TOKEN, expect=None)
if idp.status_code == 404:
    idp = call("PUT", f"/OS-FEDERATION/identity_providers/{IDP}", TOKEN, json={"identity_provider": {
        "enabled": True, "description": "stonegate tests: assertions from a request header"}})
idp = idp.json()["identity_provider"]
proto = f"/OS-FEDERATION/identity_providers/{IDP}/protocols/{PROTOCOL}"
if call("GET", proto, TOKEN, expect=None).status_code == 404:
    call("PUT", proto, TOKEN, json={"protocol": {"mapping_id": MAPPING}})
eprint(f"  federation: {IDP}/{PROTOCOL} -> groups {sorted(fed_groups)}")

# A "compute" service in the catalog: app-credential access rules name a
# service type, which must appear in the token's catalog. Nothing listens on
# this URL (port 9, discard); stonegate never calls catalog endpoints but its own
# identity one.
ksm_url = "http://127.0.0.1:9/v2.1"
compute = find("services", "services", type="compute")
if compute is None:
    compute = call("POST", "/services", TOKEN, json={"service": {
        "name": "echo-compute", "type": "compute", "enabled": True,
        "description": "stonegate test service"}}).json()["service"]
    eprint(f"  created service echo-compute {compute['id']}")
have = {e["interface"]: e for e in
        call("GET", "/endpoints", TOKEN, params={"service_id": compute["id"]}).json()["endpoints"]}
for iface in ("public", "internal", "admin"):
    if iface not in have:
        call("POST", "/endpoints", TOKEN, json={"endpoint": {
            "service_id": compute["id"], "interface": iface, "url": ksm_url,
            "region_id": "RegionOne", "enabled": True}})
    elif have[iface]["url"] != ksm_url:
        call("PATCH", f"/endpoints/{have[iface]['id']}", TOKEN, json={"endpoint": {"url": ksm_url}})

image = find("services", "services", type="image")
if image is None:
    image = call("POST", "/services", TOKEN, json={"service": {
        "name": "echo-image", "type": "image", "enabled": True,
        "description": "stonegate test service"}}).json()["service"]
    eprint(f"  created service echo-image {image['id']}")
image_url = "http://127.0.0.1:9/image"
if not call("GET", "/endpoints", TOKEN, params={"service_id": image["id"]}).json()["endpoints"]:
    call("POST", "/endpoints", TOKEN, json={"endpoint": {
        "service_id": image["id"], "interface": "public", "url": image_url,
        "region_id": "RegionOne", "enabled": True}})

identity_service = find("services", "services", type="identity")
endpoints = call("GET", "/endpoints", TOKEN, params={"service_id": identity_service["id"]}).json()["endpoints"]

# --- application credentials (each made by its owner with its own token) and a trust
demo_token, _ = issue(password_identity("demo", DEMO_PASSWORD), project_scope("demo"))
svc_token, _ = issue(password_identity("svc", SVC_PASSWORD), project_scope("service"))
appcreds = {}
for owner, owner_token, name, role, extra in (
        (demo_user, demo_token, "stonegate-appcred", "reader", {}),
        (demo_user, demo_token, "stonegate-appcred-rules", "reader", {"access_rules": [
            {"service": "compute", "path": "/v2.1/servers", "method": "GET"}]}),
        (svc_user, svc_token, "stonegate-svc-appcred", "service", {})):
    ac_path = f"/users/{owner['id']}/application_credentials"
    for old in kslib.call("GET", ac_path, owner_token, params={"name": name}).json()["application_credentials"]:
        kslib.call("DELETE", f"{ac_path}/{old['id']}", owner_token)
    body = {"name": name, "description": "stonegate tests", "roles": [{"name": role}], **extra}
    ac = kslib.call("POST", ac_path, owner_token,
                    json={"application_credential": body}).json()["application_credential"]
    appcreds[name] = {"id": ac["id"], "secret": ac["secret"], "name": name}
    eprint(f"  created application credential {name} {ac['id']}")

trust = None
for t in kslib.call("GET", "/OS-TRUST/trusts", demo_token,
                    params={"trustor_user_id": demo_user["id"]}).json()["trusts"]:
    if t["trustee_user_id"] == trustee["id"] and t.get("project_id") == demo["id"] and not t.get("expires_at"):
        trust = t
if trust is None:
    trust = kslib.call("POST", "/OS-TRUST/trusts", demo_token, json={"trust": {
        "trustor_user_id": demo_user["id"], "trustee_user_id": trustee["id"],
        "project_id": demo["id"], "impersonation": False,
        "roles": [{"name": "member"}], "allow_redelegation": False}}).json()["trust"]
    eprint(f"  created trust demo -> trustee {trust['id']}")
else:
    eprint(f"  found   trust demo -> trustee {trust['id']}")

fixtures = {
    "auth_url": AUTH_URL,
    "region": "RegionOne",
    "domains": {"default": "default", "demo-domain": demo_domain["id"]},
    "projects": {"admin": admin_project["id"], "demo": demo["id"], "demo-alt": demo_alt["id"],
                 "service": service["id"]},
    "roles": roles,
    "users": {
        "admin": {"id": admin_user["id"], "password": ADMIN_PASSWORD,
                  "domain": "default"},
        "demo": {"id": demo_user["id"], "password": DEMO_PASSWORD, "domain": "default"},
        "svc": {"id": svc_user["id"], "password": SVC_PASSWORD, "domain": "default"},
        "trustee": {"id": trustee["id"], "password": TRUSTEE_PASSWORD, "domain": "default"},
        "revokee": {"id": revokee["id"], "password": REVOKEE_PASSWORD, "domain": "default"},
        "svc-limited": {"id": svc_limited["id"], "password": SVC_PASSWORD, "domain": "default"},
    },
    "assignments": [
        {"user": "demo", "project": "demo", "roles": ["member", "reader"]},
        {"user": "demo", "project": "demo-alt", "roles": ["member"]},
        {"user": "demo", "domain": "demo-domain", "roles": ["member"]},
        {"user": "svc", "project": "service", "roles": ["service", "admin"]},
        {"user": "revokee", "project": "demo", "roles": ["member"]},
        {"user": "svc-limited", "project": "service", "roles": ["service"]},
        {"user": "admin", "project": "admin", "roles": ["admin"]},
        {"user": "admin", "system": "all", "roles": ["admin"]},
    ],
    "services": {"identity": identity_service["id"], "compute": compute["id"], "image": image["id"]},
    "federation": {"identity_provider": IDP, "protocol": PROTOCOL, "mapping": MAPPING,
                   "domain_id": idp["domain_id"], "assertion_header": "Stonegate-Federation-User",
                   "groups": fed_groups, "project": "demo"},
    "compute_endpoint_url": ksm_url,
    "endpoints": {e["interface"]: {"id": e["id"], "url": e["url"]} for e in endpoints},
    "fernet_key_repository": os.path.join(RUN, "fernet-keys"),
    "application_credentials": {"unrestricted": appcreds["stonegate-appcred"],
                                "access_rules": appcreds["stonegate-appcred-rules"],
                                "service": appcreds["stonegate-svc-appcred"]},
    "trust": {"id": trust["id"], "trustor": "demo", "trustee": "trustee", "project": "demo",
              "roles": ["member"]},
}
dump(os.path.join(RUN, "fixtures.json"), fixtures)
eprint(f"  fixtures written to {os.path.join(RUN, 'fixtures.json')} ({time.monotonic() - T0:.2f}s)")
