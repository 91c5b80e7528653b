#!/usr/bin/env bash
# Validates deploy/: Kubernetes manifests against the Kubernetes schemas
# (PyPI kubernetes-validate, which ships them: works offline), every embedded
# stonegate.toml with `stonegate check-config`, the rest for YAML syntax.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/target/deploy-venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  python3 -m venv "$VENV"
  timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0" PyYAML
fi
cargo build -q --bin stonegate
"$VENV/bin/python" scripts/validate-deploy.py "$ROOT/target/debug/stonegate"
