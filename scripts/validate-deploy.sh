#!/usr/bin/env bash
# Validates deploy/ — what an operator applies — offline, and exits non-zero on
# any failure:
#  1. every YAML file under deploy/ parses;
#  2. every Kubernetes object of a core or *.k8s.io API group is validated
#     against the Kubernetes $K8S_VERSION (default 1.31.0) OpenAPI schemas in
#     strict mode (unknown fields fail) with PyPI kubernetes-validate, which
#     ships the schemas. CRDs (Traefik's Middleware) have no core schema: they
#     are reported as skipped and get the structural checks of step 4 only;
#  3. every embedded stonegate.toml (a ConfigMap's `stonegate.toml` key, and
#     every deploy/**/*.toml) passes `target/debug/stonegate check-config`.
#     The secrets and keys they name live only in the cluster or on the host,
#     so a copy is checked in which password_file / *_secret_file point at a
#     temporary dummy secret and key_repository at a temporary two-key Fernet
#     repository (STONEGATE_PASSWORD is set too, for configs that use it);
#  4. cross-checks that a schema cannot see:
#     - every identity-header list (ingress-nginx auth-response-headers,
#       Traefik authResponseHeaders, Envoy header_mutation and
#       allowed_upstream_headers) equals IDENTITY_HEADERS in src/headers.rs;
#     - ingress-nginx sets auth-method (so it, not the client, sends
#       X-Original-URI); Traefik does not trust client X-Forwarded-*; Envoy
#       runs header_mutation before ext_authz, fails closed, rejects
#       underscores and sends the token headers; endpoint paths match the
#       [[forward_auth]] paths of the configs;
#     - Envoy's gRPC ext_authz (envoy-grpc.yaml), Envoy Gateway's
#       SecurityPolicy and Istio's envoyExtAuthzGrpc provider reach a
#       Service port of a stonegate serving flavor = "envoy-grpc" (appProtocol
#       h2c), fail closed with 503, send every header (no allowed_headers /
#       headersToExtAuth), and (Envoy) use V3, include_peer_certificate, an
#       HTTP/2 cluster with a grpc.health.v1 check and a timeout above
#       stonegate's Keystone timeout; every Istio CUSTOM AuthorizationPolicy
#       names a provider of the mesh config; every stonegate_service a route
#       selects (Envoy's per-route context_extensions, Envoy Gateway's
#       extAuth.contextExtensions) is a [forward_auth.services.<name>] profile
#       of the stonegate behind it, and no Envoy route disables ext_authz;
#     - kube-apiserver webhooks (keystone-webhook.yaml, apiserver/): the webhook
#       kubeconfigs (not API objects) name https://<ClusterIP>:<port>/webhook of a
#       Service reaching a [kubernetes] listener, with a CA; the apiserver sets
#       both webhook config files (mounted), --authentication-token-webhook-
#       version=v1, the cache TTLs, and RBAC before Webhook; cert_file/key_file
#       come from a read-only Secret, role_mappings_file/policy_file from the
#       ConfigMap (checked by check-config as shipped);
#     - each stonegate container: --config, password file and key repository
#       are really mounted (Secret keys included), ports and probes match the
#       config, files are readable by its non-root uid, grace period covers
#       preStop + shutdown_grace_period, hardened securityContext;
#     - systemd unit: LoadCredential matches password_file, TimeoutStopSec
#       exceeds shutdown_grace_period, hardening present;
#       `systemd-analyze verify` when available;
#     - Prometheus files: every stonegate_* metric exists in src/;
#     - Dockerfile: multi-stage, --locked, non-root, every declared target stubbed.
#     `envoy --mode validate` runs too when an envoy binary is on PATH.
# The checks are in scripts/validate_deploy.py; this script installs their venv and runs them.
# Usage: scripts/validate-deploy.sh   (from anywhere; offline once the venv is installed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/target/deploy-venv"
KV_VERSION="1.37.0"
K8S_VERSION="${K8S_VERSION:-1.31.0}"

# Idempotent: (re)install only when the venv lacks the pinned version.
if ! "$VENV/bin/python" - "$KV_VERSION" 2>/dev/null <<'PY'
import sys, importlib.metadata as m
import yaml, kubernetes_validate  # noqa: F401
sys.exit(m.version("kubernetes-validate") != sys.argv[1])
PY
then
  echo "installing kubernetes-validate $KV_VERSION into $VENV"
  python3 -m venv "$VENV"
  timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==$KV_VERSION" "PyYAML>=6"
fi

cargo build -q --bin stonegate

exec "$VENV/bin/python" "$ROOT/scripts/validate_deploy.py" "$ROOT" "$ROOT/target/debug/stonegate" "$K8S_VERSION"
