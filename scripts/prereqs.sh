# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: make sure the system tools
# the Keystone harness needs are there (curl, python3 >= 3.11 with venv).
# As root with apt-get they are installed (idempotently); otherwise the
# missing ones are named and the script stops.
ensure_prereqs() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  if command -v python3 >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
  fi
  if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      printf 'installing %s with apt-get\n' "${missing[*]}" >&2
      DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" ca-certificates >/dev/null
    else
      printf 'ERROR: missing %s (Debian/Ubuntu: sudo apt-get install -y %s)\n' \
        "${missing[*]}" "${missing[*]}" >&2
      return 1
    fi
  fi
  command -v cargo >/dev/null || { echo "ERROR: cargo is required (https://rustup.rs)" >&2; return 1; }
}
