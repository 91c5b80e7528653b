# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# Common settings of stonegate's real-Keystone test harness (adapted from the
# shared harness). Sourced by keystone-up.sh / keystone-down.sh; not run directly.
#
# Everything can be overridden from the environment:
#   KEYSTONE_PORT (25357)  KEYSTONE_WORKERS (2)
#   HARNESS_VENV (<repo>/target/keystone/venv)  HARNESS_RUN (<repo>/target/keystone/run)
#   KEYSTONE_ADMIN_PASSWORD  DEMO_PASSWORD  SVC_PASSWORD  REVOKEE_PASSWORD  TRUSTEE_PASSWORD

HARNESS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$HARNESS_DIR/../.." && pwd)"
VENV="${HARNESS_VENV:-$REPO_DIR/target/keystone/venv}"
RUN="${HARNESS_RUN:-$REPO_DIR/target/keystone/run}"
PY="$VENV/bin/python"

HOST=127.0.0.1
# Below 32768: Linux hands out 32768-60999 as ephemeral client ports, which
# could already hold the port when the harness starts.
KEYSTONE_PORT="${KEYSTONE_PORT:-25357}"
KEYSTONE_WORKERS="${KEYSTONE_WORKERS:-2}"

KEYSTONE_URL="http://$HOST:$KEYSTONE_PORT"
OS_AUTH_URL="$KEYSTONE_URL/v3"

ADMIN_USER=admin
ADMIN_PASSWORD="${KEYSTONE_ADMIN_PASSWORD:-admin-pass}"
ADMIN_PROJECT=admin
REGION=RegionOne
DEMO_PASSWORD="${DEMO_PASSWORD:-demo-pass}"
SVC_PASSWORD="${SVC_PASSWORD:-svc-pass}"
REVOKEE_PASSWORD="${REVOKEE_PASSWORD:-revokee-pass}"
TRUSTEE_PASSWORD="${TRUSTEE_PASSWORD:-trustee-pass}"

KEYSTONE_ETC="$RUN/etc"
KEYSTONE_CONF="$KEYSTONE_ETC/keystone.conf"
FERNET_KEYS="$RUN/fernet-keys"
RECEIPT_KEYS="$RUN/fernet-receipt-keys"
CREDENTIAL_KEYS="$RUN/credential-keys"
KEYSTONE_DB="$RUN/keystone.db"
KEYSTONE_PID="$RUN/keystone.pid"
KEYSTONE_LOG="$RUN/keystone.log"

# Python helpers (kslib.py, fixtures.py) read these: keep them consistent with
# this file whatever the caller's environment holds (e.g. an old OS_AUTH_URL).
export HARNESS_RUN="$RUN" OS_AUTH_URL KEYSTONE_PORT \
  KEYSTONE_ADMIN_PASSWORD="$ADMIN_PASSWORD" DEMO_PASSWORD SVC_PASSWORD REVOKEE_PASSWORD TRUSTEE_PASSWORD

# Every curl gets a hard timeout.
CURL=(curl -sS --connect-timeout 3 --max-time 20)

# Python warnings from eventlet/oslo deprecations are noise for a harness.
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now_ms() { date +%s%3N; }
# phase NAME CMD...: run CMD, print how long it took.
PHASES=()
phase() {
  local name="$1"; shift
  local t0 t1
  t0=$(now_ms)
  log "phase '$name' ..."
  "$@"
  t1=$(now_ms)
  local dt; dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b-a)/1000}')
  PHASES+=("$(printf '%-24s %7ss' "$name" "$dt")")
  log "phase '$name' done in ${dt}s"
}
print_phases() {
  echo "# phase timings"
  local p; for p in "${PHASES[@]}"; do echo "#   $p"; done
}

# pid_alive FILE: true when FILE holds the pid of a live process.
pid_alive() {
  local f="$1" pid
  [[ -s "$f" ]] || return 1
  pid=$(cat "$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() {
  ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# wait_http URL SECONDS [PIDFILE]: poll until URL answers 2xx/3xx; fail early
# if the server process (PIDFILE) died.
wait_http() {
  local url="$1" secs="$2" pidfile="${3:-}" deadline code
  deadline=$(( $(date +%s) + secs ))
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 3 "$url" || true)
    [[ "$code" =~ ^[23] ]] && return 0
    if [[ -n "$pidfile" ]] && ! pid_alive "$pidfile"; then
      log "server for $url exited (see logs under $RUN)"; return 1
    fi
    (( $(date +%s) >= deadline )) && { log "timeout after ${secs}s waiting for $url (last code $code)"; return 1; }
    sleep 0.1
  done
}

# stop_pidfile FILE NAME: stop a server we started (pid in FILE). The server was
# started with setsid, so its pid is also its process-group id; after a
# graceful SIGTERM/SIGINT we only signal that group (our own processes).
stop_pidfile() {
  local f="$1" name="$2" sig="${3:-TERM}" pid pgid i
  if ! pid_alive "$f"; then
    [[ -e "$f" ]] && rm -f "$f"
    log "$name: not running"
    return 0
  fi
  pid=$(cat "$f")
  pgid=$(ps -o pgid= -p "$pid" | tr -d ' ' || true)
  log "$name: stopping pid $pid (SIG$sig)"
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after 10s, SIGKILL"
    if [[ "$pgid" == "$pid" ]]; then kill -KILL -- "-$pgid" 2>/dev/null || true
    else kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  # Reap any worker left in the server's own process group.
  if [[ "$pgid" == "$pid" ]] && pgrep -g "$pgid" >/dev/null 2>&1; then
    sleep 0.5
    kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  rm -f "$f"
  log "$name: stopped"
}

need_venv() {
  [[ -x "$PY" ]] || die "no virtualenv at $VENV: run keystone-up.sh first"
}

# start_wsgi NAME PIDFILE LOGFILE PORT MODULE:APP PROCS THREADS SERVER [extra server args...]
# Start a WSGI app on $HOST:PORT under uwsgi (pyuwsgi) in its own session
# (setsid) and record its master pid. SERVER: uwsgi (plain --http-socket, one
# request per connection) or uwsgi-http11 (--http11-socket, keep-alive).
start_wsgi() {
  local name="$1" pidfile="$2" logfile="$3" port="$4" app="$5" procs="$6" threads="$7" server="$8"
  shift 8
  local cmd
  case "$server" in
    uwsgi|uwsgi-http11)
      # Plain --http-socket closes the connection after every response; say so
      # ('Connection: close', as devstack does), else keep-alive clients
      # reuse a closing socket and get ECONNRESET.
      local sock=(--http-socket "$HOST:$port" --add-header 'Connection: close')
      [[ "$server" == uwsgi-http11 ]] && sock=(--http11-socket "$HOST:$port")
      cmd=("$VENV/bin/uwsgi" "${sock[@]}" --module "$app" --pythonpath "$HARNESS_DIR"
           --master --processes "$procs" --threads "$threads" --lazy-apps --need-app
           --enable-threads --die-on-term --exit-on-reload --buffer-size 65535
           --disable-logging --pidfile "$pidfile" "$@") ;;
    *) die "unknown WSGI server '$server' (uwsgi, uwsgi-http11)" ;;
  esac
  port_free "$port" || die "$name: port $HOST:$port is in use by another process"
  : >"$logfile"
  ( cd "$RUN" && exec setsid "${cmd[@]}" >>"$logfile" 2>&1 </dev/null ) &
  local pid=$!
  echo "$pid" >"$pidfile"
  log "$name: $server, $procs process(es) x $threads thread(s) on $HOST:$port as pid $pid (log $logfile)"
}
