#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each).
#   scripts/fuzz.sh          # 60 s per target
#   scripts/fuzz.sh 10       # CI smoke run
# Needs the nightly toolchain (rustup) and cargo-fuzz (installed if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
SECS="${1:-60}"
rustup toolchain list | grep -q '^nightly' || { echo "fuzz.sh: no nightly toolchain" >&2; exit 1; }
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  timeout 1200 cargo install cargo-fuzz --locked
fi
for target in token_decode header_strip; do
  mkdir -p "corpus/$target"
  echo "fuzz.sh: $target for ${SECS}s"
  timeout $((SECS + 600)) cargo +nightly fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$SECS" -max_len=4096 -print_final_stats=1 2>&1 | tail -n 12
done
