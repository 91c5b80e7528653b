#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each).
#   scripts/fuzz.sh          # 60 s per target
#   scripts/fuzz.sh 5        # CI smoke run
#   scripts/fuzz.sh 60 session_headers oslo_ini   # only these targets (built alone)
# Needs the nightly toolchain (rustup) and cargo-fuzz (installed if missing).
# fuzz/ is its own package (own [workspace], own lock file): the main build,
# tests and clippy never see it. The working corpus is fuzz/corpus/<target>
# (not versioned); fuzz/seeds/<target> (versioned) holds real Keystone
# payloads of every kind and the spec's test vectors to start from.
# A crash leaves its input in fuzz/artifacts/<target>/ and fails this script.
# Before a release, run `scripts/fuzz.sh 120` (every target 120 s: latent
# findings CI's 5 s would meet later). The build is bounded by 40 min; a cold
# one (every dependency again, with sanitizers) on cores shared with other
# builds can take longer: run again, what was built is kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
SECS="${1:-60}"
[[ "$SECS" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [seconds per target] [target...]" >&2; exit 64; }
shift $(( $# > 0 ? 1 : 0 ))
rustup toolchain list | grep -q '^nightly' || { echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  timeout 1200 cargo install cargo-fuzz --locked
fi
# Every target of fuzz/Cargo.toml (or those named), built once (one cargo
# invocation for all), then run.
mkdir -p target
if [[ $# -eq 0 ]]; then
  set -- $(cargo +nightly fuzz list)
  timeout 2400 cargo +nightly fuzz build >target/fuzz-build.log 2>&1 || { tail -n 40 target/fuzz-build.log >&2; exit 1; }
else
  for target in "$@"; do
    timeout 2400 cargo +nightly fuzz build "$target" >target/fuzz-build.log 2>&1 || { tail -n 40 target/fuzz-build.log >&2; exit 1; }
  done
fi
for target in "$@"; do
  mkdir -p "corpus/$target" "seeds/$target" target
  echo "fuzz.sh: $target for ${SECS}s"
  rc=0
  timeout $((SECS + 900)) cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$SECS" -max_len=4096 -print_final_stats=1 >"target/fuzz-$target.log" 2>&1 || rc=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|ERROR|panicked|SUMMARY|Test unit written' \
    "target/fuzz-$target.log" || true
  if [[ $rc != 0 ]]; then
    tail -n 40 "target/fuzz-$target.log" >&2
    echo "fuzz.sh: $target FAILED (exit $rc; full log fuzz/target/fuzz-$target.log)" >&2
    exit "$rc"
  fi
done
echo "fuzz.sh: every target ran ${SECS}s without a crash"
