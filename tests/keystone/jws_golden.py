"""Golden JWS tokens made by Keystone's own JWS formatter, and Keystone's
reading of them (the oracle of tests/product/jws.rs).

    python jws_golden.py generate DIR   # a key pair (keystone's jwt_utils),
                                        # DIR/public/public.pem and
                                        # DIR/tokens.json: one token per kind
    python jws_golden.py decode DIR     # Keystone's validate_token of every
                                        # token of DIR/tokens.json with the
                                        # keys of DIR/public, as JSON

Run with the harness venv's Python (keystone 30.0.0). The private key is
thrown away after generation: only the public key is committed, as only it
is given to stonegate. `generate` makes every kind the formatter knows,
including federated, OAuth1, OAuth 2.0 mTLS and trust tokens that the
harness Keystone cannot issue easily.
"""

import json
import os
import sys
import tempfile

import keystone.conf
from keystone.common import jwt_utils
from keystone.token.providers.jws import core

CONF = keystone.conf.CONF

FAR = "2100-01-01T00:00:00.000000Z"
PAST = "2020-01-01T00:00:00.000000Z"
U = "7b7a2d0d4c6e4d37a8fa3a6c9a0c1e11"
P = "0f92ff022b0f4960b6bf6edfb628994e"
D = "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"

KINDS = {
    "unscoped": dict(methods=["password"]),
    "project": dict(methods=["password"], project_id=P),
    "rescoped": dict(methods=["token", "password"], project_id=P, parent=True),
    "domain": dict(methods=["password"], domain_id=D),
    "default-domain": dict(methods=["password"], domain_id="default"),
    "system": dict(methods=["password"], system="all"),
    "trust": dict(methods=["password"], project_id=P, trust_id="1d7b3c2a9f8e4d6c5b4a392817161514"),
    "federated-unscoped": dict(
        methods=["mapped"],
        federated_group_ids=[{"id": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}, {"id": "group-two"}],
        identity_provider_id="idp-1",
        protocol_id="saml2",
    ),
    "federated-project": dict(
        methods=["mapped"],
        project_id=P,
        federated_group_ids=[{"id": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}],
        identity_provider_id="idp-1",
        protocol_id="openid",
    ),
    "federated-domain": dict(
        methods=["mapped"],
        domain_id=D,
        federated_group_ids=[{"id": "g"}],
        identity_provider_id="idp-1",
        protocol_id="openid",
    ),
    "oauth1": dict(methods=["oauth1"], project_id=P, access_token_id="c0ffee0123456789abcdef0123456789"),
    "application-credential": dict(
        methods=["application_credential"], project_id=P, app_cred_id="5324490ca39b411e8c21c1b5f92b6f92"
    ),
    "oauth2-mtls": dict(
        methods=["oauth2_credential"], project_id=P, thumbprint="yT2FZeBHcVxZB5sxrO_2iKbqn8d8Zc7pqNhzTv4NyhU"
    ),
    "non-uuid-user": dict(methods=["password"], project_id=P, user_id="ldap-user@example"),
    "expired": dict(methods=["password"], project_id=P, expires_at=PAST),
}


def configure(public, private=None):
    keystone.conf.configure(CONF)
    CONF([], project="keystone", default_config_files=[])
    CONF.set_override("jws_public_key_repository", public, group="jwt_tokens")
    if private:
        CONF.set_override("jws_private_key_repository", private, group="jwt_tokens")


def generate(out):
    public = os.path.join(out, "public")
    os.makedirs(public, exist_ok=True)
    with tempfile.TemporaryDirectory() as private:
        jwt_utils.create_jws_keypair(
            os.path.join(private, "private.pem"), os.path.join(public, "public.pem")
        )
        configure(public, private)
        f = core.JWSFormatter()
        tokens = {}
        for name, kind in KINDS.items():
            kind = dict(kind)
            audit_ids = ["aXVkaXQtb25lLW9mLTIy"[:22]]
            if kind.pop("parent", False):
                audit_ids.append("cGFyZW50LWF1ZGl0LWlk"[:22])
            user_id = kind.pop("user_id", U)
            expires_at = kind.pop("expires_at", FAR)
            methods = kind.pop("methods")
            token, _issued_at = f.create_token(user_id, expires_at, audit_ids, methods, **kind)
            tokens[name] = token
    with open(os.path.join(out, "tokens.json"), "w") as fh:
        json.dump(tokens, fh, indent=1, sort_keys=True)
        fh.write("\n")


FIELDS = [
    "user_id", "methods", "audit_ids", "system", "domain_id", "project_id", "trust_id",
    "federated_group_ids", "identity_provider_id", "protocol_id", "access_token_id",
    "app_cred_id", "thumbprint", "issued_at", "expires_at",
]


def decode(out):
    configure(os.path.join(out, "public"))
    f = core.JWSFormatter()
    with open(os.path.join(out, "tokens.json")) as fh:
        tokens = json.load(fh)
    result = {}
    for name, token in tokens.items():
        result[name] = dict(zip(FIELDS, f.validate_token(token)))
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("generate", "decode"):
        sys.exit(__doc__)
    {"generate": generate, "decode": decode}[sys.argv[1]](sys.argv[2])
