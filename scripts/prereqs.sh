# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: make sure the system tools
# the Keystone harness needs are there (curl, python3 >= 3.11 with venv), and
# nginx (with auth_request) for the ingress tests, memcached and redis-server
# for the shared-cache tests, rabbitmq-server for the audit messaging test.
# As root with apt-get they are installed (idempotently); otherwise the
# missing ones are named and the script stops.
ensure_prereqs() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  if command -v python3 >/dev/null && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
  fi
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || missing+=(nginx)
  command -v openssl >/dev/null || missing+=(openssl)
  [[ -x /usr/bin/memcached ]] || command -v memcached >/dev/null || missing+=(memcached)
  [[ -x /usr/bin/redis-server ]] || command -v redis-server >/dev/null || missing+=(redis-server)
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
  if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      printf 'installing %s with apt-get\n' "${missing[*]}" >&2
      DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" ca-certificates >/dev/null
      # The package starts a system nginx on port 80; the tests run their own.
      if [[ " ${missing[*]} " == *" nginx "* ]]; then
        { systemctl stop nginx || service nginx stop || pkill -x nginx; } >/dev/null 2>&1 || true
      fi
      # Likewise memcached (11211) and redis-server (6379): the tests start their own.
      for svc in memcached redis-server rabbitmq-server; do
        if [[ " ${missing[*]} " == *" $svc "* ]]; then
          { systemctl stop "$svc" || service "$svc" stop; } >/dev/null 2>&1 || true
        fi
      done
    else
      printf 'ERROR: missing %s (Debian/Ubuntu: sudo apt-get install -y %s)\n' \
        "${missing[*]}" "${missing[*]}" >&2
      return 1
    fi
  fi
  command -v cargo >/dev/null || { echo "ERROR: cargo is required (https://rustup.rs)" >&2; return 1; }
}
