"""Checks deploy/: Kubernetes manifests against the Kubernetes schemas
(kubernetes-validate, strict), every embedded stonegate.toml with
`stonegate check-config`, and every other YAML file for syntax."""

import glob
import os
import re
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S_VERSION = os.environ.get("K8S_VERSION", "1.31.0")
STONEGATE = sys.argv[1]
failures = []
checked = {"manifests": 0, "configs": 0, "yaml": 0}


def check_config(name, text):
    """Runs check-config on a config whose secret files are replaced by temp ones."""
    with tempfile.TemporaryDirectory() as d:
        secret = os.path.join(d, "secret")
        with open(secret, "w") as f:
            f.write("not-a-real-secret\n")
        text = re.sub(r'(password_file|application_credential_secret_file)\s*=\s*"[^"]*"',
                      lambda m: f'{m.group(1)} = "{secret}"', text)
        path = os.path.join(d, "stonegate.toml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([STONEGATE, "check-config", path], capture_output=True, text=True)
        checked["configs"] += 1
        if r.returncode != 0:
            failures.append(f"{name}: stonegate check-config failed:\n{r.stderr}")
        else:
            print(f"  ok  config  {name}")


for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "**", "*.yaml"), recursive=True)):
    rel = os.path.relpath(path, ROOT)
    with open(path) as f:
        try:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            failures.append(f"{rel}: invalid YAML: {e}")
            continue
    checked["yaml"] += 1
    if not rel.startswith("deploy/kubernetes/"):
        print(f"  ok  yaml    {rel}")
        continue
    for doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion", "")
        name = f"{rel} {kind}/{doc.get('metadata', {}).get('name')}"
        if "." in api.split("/")[0] and not api.split("/")[0].endswith("k8s.io"):
            # A CRD (e.g. traefik.io): no core schema; syntax checked above.
            print(f"  --  crd     {name} (schema not in Kubernetes core; YAML syntax only)")
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            checked["manifests"] += 1
            print(f"  ok  k8s     {name}")
        except kubernetes_validate.ValidationError as e:
            failures.append(f"{name}: {e.message} at {'/'.join(str(p) for p in e.path)}")
        except Exception as e:  # schema missing for this kind, etc.
            failures.append(f"{name}: {e}")
        if kind == "ConfigMap" and "stonegate.toml" in doc.get("data", {}):
            check_config(name, doc["data"]["stonegate.toml"])

for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "**", "*.toml"), recursive=True)):
    with open(path) as f:
        check_config(os.path.relpath(path, ROOT), f.read())

print(f"checked {checked['manifests']} Kubernetes objects (v{K8S_VERSION}, strict), "
      f"{checked['configs']} stonegate configs, {checked['yaml']} YAML files")
if failures:
    print("\nFAILED:\n" + "\n".join(failures), file=sys.stderr)
    sys.exit(1)
