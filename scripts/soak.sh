#!/usr/bin/env bash
# Soak: mixed valid / invalid / revoked traffic through stonegate (local Fernet
# validation + revocation polling) while Keystone is stopped and restarted and
# its keys rotate. Bounded in time, loopback only.
#
#   scripts/soak.sh [SECONDS]     # default 60
#
# Reports requests by outcome and the requests that reached the upstream
# without a valid identity ("violations", must be 0; exit 1 otherwise).
# Keystone down: known users keep working from cache/local validation, new
# decisions that need Keystone get 503 (never 401, never forwarded).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HARNESS="$ROOT/tests/keystone"
# shellcheck source=../tests/keystone/lib.sh
source "$HARNESS/lib.sh"
# shellcheck source=prereqs.sh
source "$ROOT/scripts/prereqs.sh"
ensure_prereqs
SECS="${1:-60}"
log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

timeout 1800 cargo build -q --bin stonegate
timeout 1800 cargo build -q -p stonegate-tools --bin soak
eval "$("$HARNESS/keystone-up.sh")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stonegate-soak.XXXXXX"); chmod 700 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$HARNESS/keystone-up.sh" >/dev/null 2>&1 || true   # leave Keystone as found: running
  rm -rf "$WORK"
}
trap cleanup EXIT

# Tokens (files only; never printed).
python3 - "$STONEGATE_TEST_KEYSTONE_FIXTURES" "$WORK" <<'PY'
import base64, json, os, sys, urllib.request
fx = json.load(open(sys.argv[1])); out = sys.argv[2]; url = fx["auth_url"]
def issue(user, project):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": fx["users"][user]["password"]}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    req = urllib.request.Request(url + "/auth/tokens?nocatalog", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.headers["X-Subject-Token"]
svc = issue("svc", "service")
valid = [(issue("demo", "demo"), fx["users"]["demo"]["id"]) for _ in range(5)]
valid += [(issue("svc", "service"), fx["users"]["svc"]["id"]) for _ in range(2)]
revoked = []
for _ in range(3):
    t = issue("demo", "demo")
    req = urllib.request.Request(url + "/auth/tokens", method="DELETE",
                                 headers={"X-Auth-Token": svc, "X-Subject-Token": t})
    urllib.request.urlopen(req, timeout=20)
    revoked.append(t)
invalid = ["gAAAAAB" + base64.urlsafe_b64encode(os.urandom(140)).decode().rstrip("=") for _ in range(4)]
t = valid[0][0]; invalid.append(t[:60] + ("A" if t[60] != "A" else "B") + t[61:])
open(f"{out}/valid.txt", "w").write("".join(f"{t} {u}\n" for t, u in valid))
open(f"{out}/revoked.txt", "w").write("".join(t + "\n" for t in revoked))
open(f"{out}/invalid.txt", "w").write("".join(t + "\n" for t in invalid))
PY

free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free); SG=$(free); ADMIN=$(free)
cat >"$WORK/stonegate.toml" <<EOF
listen = "127.0.0.1:$SG"
upstream = "http://127.0.0.1:$UP"
admin_listen = "127.0.0.1:$ADMIN"
[keystone_authtoken]
auth_url = "$OS_AUTH_URL"
username = "svc"
user_domain_name = "Default"
project_name = "service"
project_domain_name = "Default"
http_request_timeout = 2
http_request_max_retries = 0
[fernet]
key_repository = "$KEYSTONE_FERNET_KEYS"
key_reload_interval = 1
[revocation]
revocation_poll_interval = 2
staleness_limit = 30
EOF
STONEGATE_PASSWORD="$KEYSTONE_SVC_PASSWORD" RUST_LOG=warn \
  target/debug/stonegate serve --config "$WORK/stonegate.toml" >"$WORK/stonegate.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/readyz")" == 200 ]] && break
  sleep 0.2
done

log "driving traffic for ${SECS}s; Keystone stops at $((SECS / 4))s, restarts at $((SECS / 2))s, keys rotate at $((SECS * 3 / 4))s"
target/debug/soak "127.0.0.1:$UP" "http://127.0.0.1:$SG" "$WORK" "$SECS" >"$WORK/report.json" &
DRIVER=$!
(
  sleep $((SECS / 4)); log "stopping Keystone"; "$HARNESS/keystone-down.sh" >/dev/null 2>&1
  sleep $((SECS / 4)); log "starting Keystone"; "$HARNESS/keystone-up.sh" >/dev/null 2>&1
  sleep $((SECS / 4)); log "rotating Fernet keys (keystone-manage fernet_rotate)"
  OS_KEYSTONE_CONFIG_DIR="$(dirname "$KEYSTONE_CONF")" "$KEYSTONE_MANAGE" --config-file "$KEYSTONE_CONF" \
    fernet_rotate --keystone-user "$(id -un)" --keystone-group "$(id -gn)" >/dev/null 2>&1
) &
CHAOS=$!; PIDS+=("$CHAOS")
rc=0; wait "$DRIVER" || rc=$?
wait "$CHAOS" || true
cat "$WORK/report.json"
curl -s "http://127.0.0.1:$ADMIN/metrics" | grep -E '^stonegate_(requests_total|local_decisions_total|keystone_requests_total)' >&2 || true
exit "$rc"
