#!/usr/bin/env bash
# stonegate's test command: every test, against a real Keystone.
#
#   scripts/test.sh                  # all targets + doctests
#   scripts/test.sh forged           # extra arguments go to `cargo test --all-targets`
#   scripts/test.sh --test product -- a b   # only the targets named, with filters a and b
#   KEEP_KEYSTONE=1 scripts/test.sh  # leave the harness Keystone running afterwards
#
# 1. installs what is missing (system packages only as root with apt-get; the
#    Keystone virtualenv under target/keystone/venv, reused when up to date);
# 2. starts the project's Keystone (tests/keystone/keystone-up.sh, port
#    ${KEYSTONE_PORT:-25357}) unless it already runs, and exports
#    STONEGATE_TEST_KEYSTONE_FIXTURES for the integration tests (tests/product/);
# 3. runs `cargo test --workspace --all-targets --no-fail-fast` and `cargo test --doc`;
# 4. stops the Keystone it started (also on failure or Ctrl-C).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HARNESS="$ROOT/tests/keystone"
T0=$(date +%s%3N)
# shellcheck source=../tests/keystone/lib.sh
source "$HARNESS/lib.sh"
log() { printf '[test.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
secs() { awk -v a="$1" -v b="$(date +%s%3N)" 'BEGIN{printf "%.1f", (b-a)/1000}'; }

# ------------------------------------------------------------ prerequisites
# shellcheck source=prereqs.sh
source "$ROOT/scripts/prereqs.sh"
ensure_prereqs || die "prerequisites missing"

# ------------------------------------------------------------ keystone
STARTED_KEYSTONE=0
pid_alive "$KEYSTONE_PID" || STARTED_KEYSTONE=1
cleanup() {
  local rc=$?
  if [[ $STARTED_KEYSTONE == 1 && "${KEEP_KEYSTONE:-0}" != 1 ]]; then
    "$HARNESS/keystone-down.sh" >/dev/null 2>&1 || true
  fi
  log "total $(secs "$T0")s, exit $rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t=$(date +%s%3N)
log "starting the harness Keystone on $KEYSTONE_URL (log: $KEYSTONE_LOG)"
env_lines=$("$HARNESS/keystone-up.sh") || die "keystone-up.sh failed (see above; log $KEYSTONE_LOG)"
eval "$env_lines"
export STONEGATE_TEST_KEYSTONE_FIXTURES
[[ -s "$STONEGATE_TEST_KEYSTONE_FIXTURES" ]] || die "no fixtures at $STONEGATE_TEST_KEYSTONE_FIXTURES"
log "keystone ready in $(secs "$t")s; STONEGATE_TEST_KEYSTONE_FIXTURES=$STONEGATE_TEST_KEYSTONE_FIXTURES"

# ------------------------------------------------------------ oracles
# Reference libraries the tests compare against (python-memcached for
# keystonemiddleware's cache placement), beside the harness venv, not in it.
ORACLES="$ROOT/target/py-oracles"
want=$(sha256sum "$HARNESS/oracle-requirements.txt" | cut -d' ' -f1)
if [[ "$(cat "$ORACLES/.stamp" 2>/dev/null)" != "$want" ]]; then
  log "installing tests/keystone/oracle-requirements.txt into $ORACLES"
  rm -rf "$ORACLES"
  timeout 300 "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
    --target "$ORACLES" -r "$HARNESS/oracle-requirements.txt" || die "pip install of the oracles failed"
  echo "$want" >"$ORACLES/.stamp"
fi

# ------------------------------------------------------------ tests
t=$(date +%s%3N)
# The embedded-layer product test runs examples/axum as a user does; under
# `cargo test` an example is only built as a test harness.
timeout "${TEST_TIMEOUT:-2400}" cargo build --example axum
# Every target of the workspace (the tools' tests too: tools/tests/weigher.rs),
# unless the arguments pick some (`--test product`, `--lib`...): then only
# those, so test-name filters never reach the criterion benches (which take
# them for bench filters and refuse more than one).
TARGETS=(--workspace --all-targets)
for a in "$@"; do
  [[ $a == -- ]] && break
  case "$a" in
    --lib | --bins | --tests | --benches | --examples | --all-targets | \
      --test | --test=* | --bin | --bin=* | --bench | --bench=* | --example | --example=*)
      TARGETS=()
      break
      ;;
  esac
done
log "cargo test ${TARGETS[*]} --no-fail-fast $*"
timeout "${TEST_TIMEOUT:-2400}" cargo test "${TARGETS[@]}" --no-fail-fast "$@"
log "cargo test ${TARGETS[*]} passed in $(secs "$t")s"
if (($# == 0)); then
  t=$(date +%s%3N)
  timeout "${TEST_TIMEOUT:-2400}" cargo test --doc
  log "cargo test --doc passed in $(secs "$t")s"
fi
