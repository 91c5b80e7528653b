#!/usr/bin/env bash
# stonegate's benchmarks, one command, everything on 127.0.0.1 (issue 5):
#
#   scripts/bench.sh
#
# 1. installs what is missing: wrk (apt-get, as root), gunicorn into the Keystone
#    harness venv (pinned by tests/keystone/constraints.txt, which also pins
#    keystonemiddleware 13.0.1), and starts a Keystone with the project's harness
#    (tests/keystone/keystone-up.sh) on its own port 35358 unless it runs;
# 2. builds stonegate and the bench drivers (tools/, release);
# 3. starts a fast upstream (tools/src/bin/bench_upstream.rs), nginx's plain
#    `proxy_pass` hop to it (the reference: 2 workers, upstream keepalive 64; nginx
#    from apt if missing), a bare hyper proxy (tools/src/bin/bare_proxy.rs, the second
#    reference), stonegate (`stonegate serve`, online mode, generated configs, no
#    catalog), nginx `auth_request` -> stonegate forward-auth -> upstream (with and
#    without nginx's proxy_cache of the auth subrequest), and keystonemiddleware's
#    auth_token around a trivial WSGI app under gunicorn (scripts/bench/kmw_app.py;
#    4 configurations tried, the best kept);
# 4. drives the same wrk load at each (2 threads, 64 connections, HTTP/1.1
#    keep-alive, 1 s warm-up + 5 s; 3 interleaved rounds, medians reported):
#      a upstream directly | g nginx proxy_pass hop | b bare proxy
#      g_id nginx's hop also setting stonegate's identity and X-Forwarded-* headers
#      p thread-per-core hyper proxy, bodies collected (tools/src/bin/tpc_proxy.rs:
#        what hyper alone reaches here, with every shortcut a product cannot take)
#      c stonegate, cached token | c_log same, with the per-request access log on
#      c_pub stonegate on a public route (no token: its forwarding without the auth)
#      d / d_miss local Fernet, cached / cache off (every request decrypted)
#      h / h_cache nginx auth_request -> stonegate forward-auth, without / with nginx's cache
#      e stonegate, invalid token (negative cache) | f keystonemiddleware, cached token
#      b1, c1: b and c with ONE connection (latency without queueing: the added p99)
#    and prints the ratios of issue 16 (c/g, d_miss/c, 1/c - 1/g in µs, h/g, h_cache/g);
# 4b. instructions per request on the cached path (valgrind --tool=callgrind, installed
#    by apt if missing): stonegate (and the bare proxy) under callgrind serve
#    tools/src/bin/keepalive_client.rs's N sequential keep-alive requests; the
#    counters are zeroed after a warm-up of W requests and dumped after the N, so
#    the figure is (instructions of the N) / N, deterministic to within a few %;
# 5. cold start (tools/src/bin/cold_start.rs): 1,000 concurrent requests with one new
#    token; Keystone validation calls (must be 1) and p99;
# 6. memory (tools/src/bin/cache_memory.rs): 1,000,000 identities in the cache, RSS per entry;
# 7. criterion micro-benchmarks (benches/core.rs, shortened) unless BENCH_MICRO=0;
# 8. writes target/bench/results.md and target/bench/results.svg, prints the table,
#    stops everything it started (the Keystone too, if it started it).
#
# Environment: BENCH_DURATION (5), BENCH_ROUNDS (3), BENCH_WARMUP (1), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2), BENCH_PROFILE (release | debug, for trying the script out),
# BENCH_CASES (the load cases to run, e.g. "g c h_cache"; default all),
# BENCH_KMW (1), BENCH_COLD (1), BENCH_MEM (1), BENCH_CALLGRIND (1): 0 skips that part,
# BENCH_SYSCALLS (1): 0 skips the system-call counts (strace -c, installed by apt if missing),
# BENCH_CALLGRIND_REQUESTS (2000), BENCH_CALLGRIND_WARMUP (200),
# BENCH_MICRO (1), BENCH_MEM_ENTRIES (1000000), BENCH_COLD_REQUESTS (1000),
# KEEP_KEYSTONE=1 (leave a Keystone it started running), BENCH_KEYSTONE_PORT (35358),
# BENCH_HARNESS_RUN (target/keystone/bench-run), HARNESS_VENV (target/keystone/venv).
# Tokens never appear on a command line or in the output: they live in files
# under a private temporary directory and reach wrk/curl through the
# environment or `-H @file`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HARNESS="$ROOT/tests/keystone"
# The benchmark's own Keystone instance (same harness and venv, its own port and
# state), so that a concurrent scripts/test.sh stopping the test Keystone cannot
# break a run half-way.
export KEYSTONE_PORT="${BENCH_KEYSTONE_PORT:-35358}"
export HARNESS_RUN="${BENCH_HARNESS_RUN:-$ROOT/target/keystone/bench-run}"
# shellcheck source=../tests/keystone/lib.sh
source "$HARNESS/lib.sh"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
T0=$(date +%s)

DURATION="${BENCH_DURATION:-5}"
ROUNDS="${BENCH_ROUNDS:-3}"
WARMUP="${BENCH_WARMUP:-1}"
CONNS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
PROFILE="${BENCH_PROFILE:-release}"
MICRO="${BENCH_MICRO:-1}"
MEM_ENTRIES="${BENCH_MEM_ENTRIES:-1000000}"
COLD_REQUESTS="${BENCH_COLD_REQUESTS:-1000}"
CASES="${BENCH_CASES:-}"
KMW="${BENCH_KMW:-1}"
COLD="${BENCH_COLD:-1}"
MEM="${BENCH_MEM:-1}"
CALLGRIND="${BENCH_CALLGRIND:-1}"
CG_REQUESTS="${BENCH_CALLGRIND_REQUESTS:-2000}"
CG_WARMUP="${BENCH_CALLGRIND_WARMUP:-200}"
SYSCALLS="${BENCH_SYSCALLS:-1}"
OUT="$ROOT/target/bench"
RAW="$OUT/raw"
BENCH_DIR="$ROOT/scripts/bench"

# ------------------------------------------------------------ prerequisites
for tool in curl python3 cargo; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
# apt_need CMD PACKAGE: install PACKAGE with apt-get (as root) when CMD is missing.
APT_UPDATED=0
apt_need() {
  local cmd="$1" pkg="$2"
  [[ -x "$cmd" ]] || command -v "$cmd" >/dev/null && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing $pkg with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if [[ $APT_UPDATED == 0 ]]; then timeout 600 apt-get update -qq; APT_UPDATED=1; fi
    timeout 600 apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
  else
    die "$cmd is missing (Debian/Ubuntu: sudo apt-get install -y $pkg)"
  fi
}
apt_need wrk wrk
apt_need /usr/sbin/nginx nginx
NGINX=/usr/sbin/nginx
[[ -x $NGINX ]] || NGINX=$(command -v nginx)
[[ "$CALLGRIND" != 1 ]] || apt_need valgrind valgrind
[[ "$SYSCALLS" != 1 ]] || apt_need strace strace

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stonegate-bench.XXXXXX")
chmod 700 "$WORK"
STARTED_KEYSTONE=0
pid_alive "$KEYSTONE_PID" || STARTED_KEYSTONE=1
PIDS=()
cleanup() {
  local rc=$? p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ $STARTED_KEYSTONE == 1 && "${KEEP_KEYSTONE:-0}" != 1 ]]; then
    "$HARNESS/keystone-down.sh" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  log "$( ((rc == 0)) && echo done || echo "FAILED (exit $rc)") in $(( $(date +%s) - T0 ))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_code URL WANT SECONDS PID
wait_code() {
  local url="$1" want="$2" secs="$3" pid="$4" deadline code=000
  deadline=$(( $(date +%s) + secs ))
  while (( $(date +%s) < deadline )); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 2 "$url" || true)
    [[ "$code" == "$want" ]] && return 0
    kill -0 "$pid" 2>/dev/null || { log "process $pid exited while waiting for $url"; return 1; }
    sleep 0.1
  done
  log "timeout after ${secs}s waiting for $url (last status $code)"
  return 1
}
# forget PID: drop it from PIDS once it is gone (a reused pid is never signalled).
forget() {
  local keep=() q
  for q in "${PIDS[@]}"; do [[ "$q" == "$1" ]] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}
# stop PID: SIGTERM, then SIGKILL after 5 s (only processes this script started).
stop() {
  local p="$1"
  kill "$p" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || { forget "$p"; return 0; }; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  forget "$p"
}

# ------------------------------------------------------------ keystone
log "Keystone: tests/keystone/keystone-up.sh ($KEYSTONE_URL)"
env_lines=$(timeout 1200 "$HARNESS/keystone-up.sh") || die "keystone-up.sh failed (log: $KEYSTONE_LOG)"
eval "$env_lines"
if [[ "$KMW" == 1 ]] && ! "$PY" -c 'import gunicorn, keystonemiddleware' 2>/dev/null; then
  log "installing gunicorn into $VENV (pinned by tests/keystone/constraints.txt)"
  if [[ -x "$VENV/bin/uv" ]]; then
    timeout 300 "$VENV/bin/uv" pip install -q --python "$PY" -c "$HARNESS/constraints.txt" \
      gunicorn keystonemiddleware >&2
  else
    timeout 600 "$VENV/bin/pip" install -q --disable-pip-version-check \
      -c "$HARNESS/constraints.txt" gunicorn keystonemiddleware >&2
  fi
fi
KMW_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("keystonemiddleware"))')
GUNICORN_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("gunicorn"))' 2>/dev/null || echo none)

# ------------------------------------------------------------ build
PFLAG=(--release)
[[ "$PROFILE" == debug ]] && PFLAG=()
log "cargo build ${PFLAG[*]} (stonegate + bench drivers in tools/)"
timeout 3000 cargo build "${PFLAG[@]}" --bin stonegate
timeout 3000 cargo build "${PFLAG[@]}" -p stonegate-tools --bin bench_upstream \
  --bin bare_proxy --bin tpc_proxy --bin cold_start --bin cache_memory --bin keepalive_client
BIN="$ROOT/target/$PROFILE"
rm -rf "$OUT"
mkdir -p "$RAW"

# ------------------------------------------------------------ tokens
# Issue a token for USER/PASSWORD scoped to PROJECT into FILE (never printed).
issue_token() {
  local user="$1" password="$2" project="$3" file="$4"
  python3 - "$user" "$password" "$project" >"$WORK/auth.json" <<'EOF'
import json, sys
u, p, proj = sys.argv[1:4]
print(json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": u, "domain": {"name": "Default"}, "password": p}}},
    "scope": {"project": {"name": proj, "domain": {"name": "Default"}}}}}))
EOF
  curl -sS --connect-timeout 3 --max-time 30 -o /dev/null -D "$WORK/issue-headers" \
    -H 'Content-Type: application/json' --data @"$WORK/auth.json" "$OS_AUTH_URL/auth/tokens"
  tr -d '\r' <"$WORK/issue-headers" | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}' >"$file"
  rm -f "$WORK/auth.json"
  [[ -s "$file" ]] || die "Keystone issued no token for $user"
}
issue_token "$KEYSTONE_DEMO_USER" "$KEYSTONE_DEMO_PASSWORD" "$KEYSTONE_DEMO_PROJECT" "$WORK/token-valid"
# An invalid token: Fernet-shaped, random, so Keystone answers 404 and it is negatively cached.
python3 -c 'import base64, os; print("gAAAAAB" + base64.urlsafe_b64encode(os.urandom(140)).decode().rstrip("="))' \
  >"$WORK/token-invalid"
log "tokens: a valid project token for $KEYSTONE_DEMO_USER and a random invalid one (files in $WORK)"

# ------------------------------------------------------------ servers
PATH_Q="/v2.1/servers/detail?limit=10"
UP_PORT=$(free_port); BARE_PORT=$(free_port); SG_PORT=$(free_port); SG_ADMIN=$(free_port)
SGL_PORT=$(free_port); SGL_ADMIN=$(free_port); KMW_PORT=$(free_port)
SGF_PORT=$(free_port); SGF_ADMIN=$(free_port); SGM_PORT=$(free_port); SGM_ADMIN=$(free_port)
"$BIN/bench_upstream" "127.0.0.1:$UP_PORT" >"$RAW/upstream.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
"$BIN/bare_proxy" "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$UP_PORT" >"$RAW/bare_proxy.log" 2>&1 &
BARE_PID=$!; PIDS+=("$BARE_PID")
# Case p: the upper bound of a hyper forwarding path on this machine
# (tools/src/bin/tpc_proxy.rs: thread per core, SO_REUSEPORT, bodies
# collected, nothing a product needs), beside nginx's hop.
TPC_PORT=$(free_port)
"$BIN/tpc_proxy" "127.0.0.1:$TPC_PORT" "127.0.0.1:$UP_PORT" >"$RAW/tpc_proxy.log" 2>&1 &
TPC_PID=$!; PIDS+=("$TPC_PID")

# write_config LISTEN_PORT ADMIN_PORT FILE [TOKEN_CACHE_TIME] [EXTRA_TOML]
write_config() {
  cat >"$3" <<EOF
# Generated by scripts/bench.sh
listen = "127.0.0.1:$1"
upstream = "http://127.0.0.1:$UP_PORT"
admin_listen = "127.0.0.1:$2"

[keystone_authtoken]
www_authenticate_uri = "$OS_AUTH_URL"
auth_url = "$OS_AUTH_URL"
auth_type = "password"
username = "$KEYSTONE_SVC_USER"
user_domain_name = "Default"
project_name = "$KEYSTONE_SVC_PROJECT"
project_domain_name = "Default"
interface = "internal"
region_name = "$OS_REGION_NAME"
service_type = "compute"
# The issue's cases are measured without a catalog (a ~1-10 KB header otherwise).
include_service_catalog = false
token_cache_time = ${4:-300}

[cache]
negative_ttl = 10
${5:-}
EOF
}
# Two stonegates: access log off (RUST_LOG=warn, the measured case c) and on
# (RUST_LOG=info: one access line per request, to a file; case c_log).
write_config "$SG_PORT" "$SG_ADMIN" "$WORK/stonegate.toml"
write_config "$SGL_PORT" "$SGL_ADMIN" "$WORK/stonegate-log.toml"
STONEGATE_PASSWORD="$KEYSTONE_SVC_PASSWORD" RUST_LOG=warn \
  "$BIN/stonegate" serve --config "$WORK/stonegate.toml" >"$RAW/stonegate.log" 2>&1 &
SG_PID=$!; PIDS+=("$SG_PID")
STONEGATE_PASSWORD="$KEYSTONE_SVC_PASSWORD" RUST_LOG=info \
  "$BIN/stonegate" serve --config "$WORK/stonegate-log.toml" >"$RAW/stonegate-access.log" 2>&1 &
SGL_PID=$!; PIDS+=("$SGL_PID")
# Case d: local Fernet validation with Keystone's key repository; d with the
# token cached, d_miss with token_cache_time = 0 so that every request is
# decrypted, decoded, revocation-checked and enriched locally (the cost of a
# first-sight token of a known user).
FERNET_TOML=$(printf '[fernet]\nkey_repository = "%s"\n' "$KEYSTONE_FERNET_KEYS")
write_config "$SGF_PORT" "$SGF_ADMIN" "$WORK/stonegate-fernet.toml" 300 "$FERNET_TOML"
write_config "$SGM_PORT" "$SGM_ADMIN" "$WORK/stonegate-fernet-nocache.toml" 0 "$FERNET_TOML"
STONEGATE_PASSWORD="$KEYSTONE_SVC_PASSWORD" RUST_LOG=warn \
  "$BIN/stonegate" serve --config "$WORK/stonegate-fernet.toml" >"$RAW/stonegate-fernet.log" 2>&1 &
SGF_PID=$!; PIDS+=("$SGF_PID")
STONEGATE_PASSWORD="$KEYSTONE_SVC_PASSWORD" RUST_LOG=warn \
  "$BIN/stonegate" serve --config "$WORK/stonegate-fernet-nocache.toml" >"$RAW/stonegate-fernet-nocache.log" 2>&1 &
SGM_PID=$!; PIDS+=("$SGM_PID")
# Case c_pub: the same sidecar on a public route (no token, nothing
# validated, no identity header set; still stripped, X-Forwarded-*, request
# id, route match): stonegate's forwarding alone. 1/c - 1/c_pub is what the
# auth itself (token, cache lookup, identity headers) costs a request.
SGP_PORT=$(free_port); SGP_ADMIN=$(free_port)
PUB_TOML=$(printf '[routes]\npublic = [{ method = "GET", path = "%s" }]\n' "${PATH_Q%%\?*}")
write_config "$SGP_PORT" "$SGP_ADMIN" "$WORK/stonegate-public.toml" 300 "$PUB_TOML"
STONEGATE_PASSWORD="$KEYSTONE_SVC_PASSWORD" RUST_LOG=warn \
  "$BIN/stonegate" serve --config "$WORK/stonegate-public.toml" >"$RAW/stonegate-public.log" 2>&1 &
SGP_PID=$!; PIDS+=("$SGP_PID")
# Cases h and h_cache: stonegate as nginx's forward-auth endpoint (flavor nginx),
# answering the auth subrequests of a real nginx that proxies to the upstream itself.
SGA_PORT=$(free_port); SGA_ADMIN=$(free_port)
FA_TOML=$(printf '[[forward_auth]]\nflavor = "nginx"\npath = "/_stonegate/auth"\nunavailable_status = 503\n')
write_config "$SGA_PORT" "$SGA_ADMIN" "$WORK/stonegate-auth.toml" 300 "$FA_TOML"
STONEGATE_PASSWORD="$KEYSTONE_SVC_PASSWORD" RUST_LOG=warn \
  "$BIN/stonegate" serve --config "$WORK/stonegate-auth.toml" >"$RAW/stonegate-auth.log" 2>&1 &
SGA_PID=$!; PIDS+=("$SGA_PID")

# nginx, one process with three servers: g the plain proxy_pass hop (the
# reference an operator would run instead of the sidecar), h auth_request to
# stonegate for every request, h_cache the same with nginx caching the auth
# subrequest's answer per token (ingress-nginx's auth-cache-key).
NG_PORT=$(free_port); NGA_PORT=$(free_port); NGC_PORT=$(free_port)
NG_DIR="$WORK/nginx"; mkdir -p "$NG_DIR"
# The identity headers copied from the auth answer to the upstream request
# (deploy/kubernetes/forward-auth.yaml's auth-response-headers, user part).
NG_COPY=""
i=0
IDENTITY_NAMES="X-Identity-Status X-User-Id X-User-Name X-User-Domain-Id X-User-Domain-Name
  X-Project-Id X-Project-Name X-Project-Domain-Id X-Project-Domain-Name X-Domain-Id
  X-Domain-Name X-Roles X-Is-Admin-Project X-Service-Catalog OpenStack-System-Scope X-Role
  X-User X-Tenant-Id X-Tenant-Name X-Tenant X-OpenStack-Request-ID"
# shellcheck disable=SC2086  # one name per word
IDENTITY_NAMES=$(printf '%s\n' $IDENTITY_NAMES)
for h in $IDENTITY_NAMES; do
  var=$(tr 'A-Z-' 'a-z_' <<<"$h")
  NG_COPY+="      auth_request_set \$sg_$i \$upstream_http_$var; proxy_set_header $h \$sg_$i;"$'\n'
  i=$((i + 1))
done
# ng_auth_location CACHE(0|1): the two locations of an auth_request server.
ng_auth_location() {
  cat <<EOF
    location / {
      auth_request /_stonegate_auth;
$NG_COPY      auth_request_set \$sg_cache \$upstream_cache_status;
      add_header X-Auth-Cache \$sg_cache always;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://backend;
    }
    location = /_stonegate_auth {
      internal;
      proxy_pass http://stonegate/_stonegate/auth;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Original-Method \$request_method;
EOF
  if [[ $1 == 1 ]]; then
    cat <<'EOF'
      proxy_cache auth;
      proxy_cache_key "$http_x_auth_token $request_method $request_uri";
      proxy_cache_valid 200 401 403 60s;
      proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;
EOF
  fi
  echo "    }"
}
# g_id: nginx's hop doing the upstream side of stonegate's work: on every
# request it sets the identity headers stonegate sets for the bench token
# (their values captured once from stonegate's forward-auth answer) and the
# X-Forwarded-* headers, so the upstream parses the head it parses behind
# stonegate. g_id/g is what that head alone costs a hop; c/g_id compares
# stonegate with an nginx doing the same forwarding work without the auth.
NGI_PORT=$(free_port)
wait_code "http://127.0.0.1:$SGA_ADMIN/readyz" 200 30 "$SGA_PID" || die "stonegate (forward-auth) not ready"
NG_IDENTITY=""
while IFS= read -r line; do
  name="${line%%:*}"; value="${line#*: }"
  grep -qixF -- "$name" <<<"$IDENTITY_NAMES" || continue
  [[ "$value" != *[\\\"\$]* ]] || die "identity header $name has a value nginx's config cannot hold verbatim"
  NG_IDENTITY+="      proxy_set_header $name \"$value\";"$'\n'
done < <(curl -sS -o /dev/null -D - --max-time 20 -H "X-Auth-Token: $(cat "$WORK/token-valid")" \
  -H "X-Original-URI: $PATH_Q" -H "X-Original-Method: GET" \
  "http://127.0.0.1:$SGA_PORT/_stonegate/auth" | tr -d '\r')
[[ $(grep -c proxy_set_header <<<"$NG_IDENTITY") -ge 15 ]] \
  || die "stonegate's forward-auth answer held too few identity headers for case g_id: $NG_IDENTITY"
NG_USER=""; [[ $(id -u) == 0 ]] && NG_USER="user root;"
cat >"$NG_DIR/nginx.conf" <<EOF
$NG_USER
worker_processes 2;
daemon off;
pid $NG_DIR/nginx.pid;
error_log $NG_DIR/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $NG_DIR/body; proxy_temp_path $NG_DIR/proxy;
  fastcgi_temp_path $NG_DIR/fastcgi; uwsgi_temp_path $NG_DIR/uwsgi; scgi_temp_path $NG_DIR/scgi;
  proxy_cache_path $NG_DIR/auth-cache levels=1 keys_zone=auth:10m max_size=64m inactive=120s;
  upstream backend { server 127.0.0.1:$UP_PORT; keepalive 64; }
  upstream stonegate { server 127.0.0.1:$SGA_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NG_PORT;
    location / {
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://backend;
    }
  }
  server {
    listen 127.0.0.1:$NGI_PORT;
    location / {
      proxy_http_version 1.1; proxy_set_header Connection "";
$NG_IDENTITY      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_pass http://backend;
    }
  }
  server {
    listen 127.0.0.1:$NGA_PORT;
$(ng_auth_location 0)
  }
  server {
    listen 127.0.0.1:$NGC_PORT;
$(ng_auth_location 1)
  }
}
EOF
cp "$NG_DIR/nginx.conf" "$RAW/nginx.conf"  # the report's evidence of what g_id sets
"$NGINX" -p "$NG_DIR" -c "$NG_DIR/nginx.conf" >"$RAW/nginx.log" 2>&1 &
NG_PID=$!; PIDS+=("$NG_PID")
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
wait_code "http://127.0.0.1:$UP_PORT/" 200 20 "$UP_PID" || die "bench_upstream did not start"
wait_code "http://127.0.0.1:$BARE_PORT/" 200 20 "$BARE_PID" || die "bare_proxy did not start"
wait_code "http://127.0.0.1:$TPC_PORT/" 200 20 "$TPC_PID" || die "tpc_proxy did not start"
wait_code "http://127.0.0.1:$SG_ADMIN/readyz" 200 30 "$SG_PID" || { tail -20 "$RAW/stonegate.log" >&2; die "stonegate not ready"; }
wait_code "http://127.0.0.1:$SGL_ADMIN/readyz" 200 30 "$SGL_PID" || die "stonegate (access log) not ready"
wait_code "http://127.0.0.1:$SGF_ADMIN/readyz" 200 30 "$SGF_PID" || { tail -20 "$RAW/stonegate-fernet.log" >&2; die "stonegate (fernet) not ready"; }
wait_code "http://127.0.0.1:$SGM_ADMIN/readyz" 200 30 "$SGM_PID" || die "stonegate (fernet, no cache) not ready"
wait_code "http://127.0.0.1:$SGA_ADMIN/readyz" 200 30 "$SGA_PID" || die "stonegate (forward-auth) not ready"
wait_code "http://127.0.0.1:$SGP_ADMIN/readyz" 200 30 "$SGP_PID" || die "stonegate (public route) not ready"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 "http://127.0.0.1:$SGP_PORT$PATH_Q")
[[ "$code" == 200 ]] || die "stonegate answered $code on its public route without a token"
wait_code "http://127.0.0.1:$NG_PORT/" 200 20 "$NG_PID" || { cat "$NG_DIR/error.log" >&2; die "nginx did not start"; }
printf 'X-Auth-Token: %s\n' "$(cat "$WORK/token-valid")" >"$WORK/header-valid"
for port in "$SG_PORT" "$SGL_PORT" "$SGF_PORT" "$SGM_PORT"; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 -H @"$WORK/header-valid" \
    "http://127.0.0.1:$port/v2.1/servers")
  [[ "$code" == 200 ]] || die "stonegate answered $code to the valid token"
done
# The nginx forward-auth paths: 200 with a valid token, 401 without; the
# cached one must answer the second request from nginx's cache.
for port in "$NGA_PORT" "$NGC_PORT"; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 -H @"$WORK/header-valid" "http://127.0.0.1:$port$PATH_Q")
  [[ "$code" == 200 ]] || die "nginx auth_request (:$port) answered $code to the valid token"
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 "http://127.0.0.1:$port$PATH_Q")
  [[ "$code" == 401 ]] || die "nginx auth_request (:$port) answered $code without a token"
done
cache=$(curl -sS -o /dev/null -D - --max-time 20 -H @"$WORK/header-valid" "http://127.0.0.1:$NGC_PORT$PATH_Q" \
  | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-cache"{print $2}')
[[ "$cache" == HIT ]] || die "nginx did not cache the auth subrequest (X-Auth-Cache: ${cache:-none})"
log "upstream :$UP_PORT, bare proxy :$BARE_PORT, stonegate :$SG_PORT (admin :$SG_ADMIN), stonegate+access log :$SGL_PORT"

# ------------------------------------------------------------ load
CPU=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)
# run_wrk CASE LABEL URL TOKEN_FILE|- [WARMUP DURATION]: one wrk measurement,
# appended to cases.jsonl.
run_wrk() {
  local case="$1" label="$2" url="$3" tokf="$4" warm="${5:-$WARMUP}" dur="${6:-$DURATION}" token="" line load rustc
  local THREADS="${WRK_THREADS:-$THREADS}" CONNS="${WRK_CONNS:-$CONNS}"
  if [[ -n "$CASES" && " $CASES " != *" $case "* ]]; then return 0; fi
  [[ "$tokf" != - ]] && token=$(cat "$tokf")
  load=$(cut -d' ' -f1 /proc/loadavg)
  rustc=$(pgrep -c -x rustc || true)
  BENCH_TOKEN="$token" timeout $((warm + 20)) wrk -t"$THREADS" -c"$CONNS" -d"${warm}s" --timeout 5s \
    -s "$BENCH_DIR/report.lua" "$url" >/dev/null 2>&1 || true
  line=$(BENCH_TOKEN="$token" timeout $((dur + 20)) wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --timeout 5s \
    -s "$BENCH_DIR/report.lua" "$url" 2>&1 | sed -n 's/^BENCH //p')
  [[ -n "$line" ]] || die "wrk produced no result for case $case"
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r.update(case=sys.argv[2], label=sys.argv[3], load=sys.argv[4], rustc=int(sys.argv[5] or 0)); print(json.dumps(r))' \
    "$line" "$case" "$label" "$load" "${rustc:-0}" >>"$RAW/cases.jsonl"
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("  %-38s %9.0f req/s  p50 %6d µs  p99 %6d µs  p99.9 %6d µs  non-2xx %d" % (sys.argv[2], r["rps"], r["p50_us"], r["p99_us"], r["p999_us"], r["errors_status"]))' \
    "$line" "$case $label" >&2
}
log "load: wrk -t$THREADS -c$CONNS, ${WARMUP}s warm-up + ${DURATION}s per case"
# The cases run in ROUNDS interleaved rounds (a b c c_log b1 c1 e, a b c ...):
# on a shared machine the load changes within seconds, so the report takes
# each case's median and shows the spread.
for round in $(seq 1 "$ROUNDS"); do
log "round $round/$ROUNDS"
run_wrk a "upstream directly" "http://127.0.0.1:$UP_PORT$PATH_Q" -
run_wrk g "nginx proxy_pass hop" "http://127.0.0.1:$NG_PORT$PATH_Q" -
run_wrk g_id "nginx proxy_pass hop setting stonegate's identity headers" "http://127.0.0.1:$NGI_PORT$PATH_Q" -
run_wrk b "bare proxy" "http://127.0.0.1:$BARE_PORT$PATH_Q" -
run_wrk p "thread-per-core hyper proxy, bodies collected" "http://127.0.0.1:$TPC_PORT$PATH_Q" -
run_wrk c "stonegate, cached token" "http://127.0.0.1:$SG_PORT$PATH_Q" "$WORK/token-valid"
run_wrk c_pub "stonegate, public route, no token" "http://127.0.0.1:$SGP_PORT$PATH_Q" -
run_wrk c_log "stonegate, access log on" "http://127.0.0.1:$SGL_PORT$PATH_Q" "$WORK/token-valid"
# Added latency without queueing: one connection, one request at a time.
WRK_THREADS=1 WRK_CONNS=1 run_wrk b1 "bare proxy, 1 connection" "http://127.0.0.1:$BARE_PORT$PATH_Q" -
WRK_THREADS=1 WRK_CONNS=1 run_wrk c1 "stonegate, 1 connection" "http://127.0.0.1:$SG_PORT$PATH_Q" "$WORK/token-valid"
run_wrk d "stonegate, local Fernet, token cached" "http://127.0.0.1:$SGF_PORT$PATH_Q" "$WORK/token-valid"
run_wrk d_miss "stonegate, local Fernet, every request decoded" "http://127.0.0.1:$SGM_PORT$PATH_Q" "$WORK/token-valid"
run_wrk e "stonegate, invalid token" "http://127.0.0.1:$SG_PORT$PATH_Q" "$WORK/token-invalid"
run_wrk h "nginx auth_request -> stonegate, no auth cache" "http://127.0.0.1:$NGA_PORT$PATH_Q" "$WORK/token-valid"
run_wrk h_cache "nginx auth_request -> stonegate, nginx caches" "http://127.0.0.1:$NGC_PORT$PATH_Q" "$WORK/token-valid"
done

# keystonemiddleware under gunicorn: sync and gthread, 2 and 4 workers; the best is case f.
KMW_BEST="" KMW_BEST_RPS=0
KMW_CONFIGS=("sync 2" "sync 4" "gthread 2" "gthread 4")
[[ "$KMW" == 1 ]] || KMW_CONFIGS=()
for cfg in "${KMW_CONFIGS[@]}"; do
  read -r klass workers <<<"$cfg"
  gargs=(-b "127.0.0.1:$KMW_PORT" -w "$workers" -k "$klass" --chdir "$BENCH_DIR"
         --backlog 2048 --timeout 30 --graceful-timeout 2 --log-level warning)
  label="gunicorn $klass, $workers workers"
  [[ $klass == gthread ]] && { gargs+=(--threads 4); label="$label x 4 threads"; }
  BENCH_KS_AUTH_URL="$OS_AUTH_URL" BENCH_KS_USER="$KEYSTONE_SVC_USER" \
    BENCH_KS_PROJECT="$KEYSTONE_SVC_PROJECT" BENCH_KS_PASSWORD="$KEYSTONE_SVC_PASSWORD" \
    "$VENV/bin/gunicorn" "${gargs[@]}" kmw_app:application >>"$RAW/kmw-gunicorn.log" 2>&1 &
  KMW_PID=$!; PIDS+=("$KMW_PID")
  wait_code "http://127.0.0.1:$KMW_PORT/" 401 60 "$KMW_PID" || die "keystonemiddleware ($label) did not start"
  # Warm every worker's token cache (the warm-up run does it too), then measure.
  run_wrk "f_probe_${klass}_$workers" "$label" "http://127.0.0.1:$KMW_PORT$PATH_Q" "$WORK/token-valid" \
    "$((WARMUP + 1))" "$DURATION"
  stop "$KMW_PID"
  rps=$(tail -1 "$RAW/cases.jsonl" | python3 -c 'import json, sys; print(int(json.load(sys.stdin)["rps"]))')
  if (( rps > KMW_BEST_RPS )); then KMW_BEST_RPS=$rps; KMW_BEST="$label"; fi
done
# Case f = the best configuration's measurement.
[[ "$KMW" != 1 ]] || python3 - "$RAW/cases.jsonl" "$KMW_BEST" <<'EOF'
import json, sys
path, best = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path)]
pick = next(r for r in rows if r["case"].startswith("f_probe") and r["label"] == best)
with open(path, "a") as f:
    f.write(json.dumps(dict(pick, case="f")) + "\n")
EOF
[[ "$KMW" != 1 ]] || log "keystonemiddleware: best is $KMW_BEST ($KMW_BEST_RPS req/s)"

# ------------------------------------------------------------ cold start
if [[ "$COLD" == 1 ]]; then
log "cold start: $COLD_REQUESTS concurrent requests, one token never seen before"
issue_token "$KEYSTONE_DEMO_USER" "$KEYSTONE_DEMO_PASSWORD" "$KEYSTONE_DEMO_PROJECT" "$WORK/token-cold"
# For scale: how long ONE validation of a new token takes, asked directly (curl, as svc).
issue_token "$KEYSTONE_SVC_USER" "$KEYSTONE_SVC_PASSWORD" "$KEYSTONE_SVC_PROJECT" "$WORK/token-svc"
issue_token "$KEYSTONE_DEMO_USER" "$KEYSTONE_DEMO_PASSWORD" "$KEYSTONE_DEMO_PROJECT" "$WORK/token-probe"
printf 'X-Auth-Token: %s\n' "$(cat "$WORK/token-svc")" >"$WORK/header-svc"
printf 'X-Subject-Token: %s\n' "$(cat "$WORK/token-probe")" >"$WORK/header-subject"
ks_ms=$(curl -sS -o /dev/null -w '%{time_total}' --max-time 30 -H @"$WORK/header-svc" \
  -H @"$WORK/header-subject" "$OS_AUTH_URL/auth/tokens")
BENCH_COLD_TOKEN=$(cat "$WORK/token-cold") timeout 120 "$BIN/cold_start" \
  "http://127.0.0.1:$SG_PORT" "http://127.0.0.1:$SG_ADMIN" "$COLD_REQUESTS" >"$RAW/cold.txt"
# The same burst through the bare proxy (no auth): what the burst costs without validation.
BENCH_COLD_TOKEN=$(cat "$WORK/token-cold") timeout 120 "$BIN/cold_start" \
  "http://127.0.0.1:$BARE_PORT" - "$COLD_REQUESTS" | sed 's/^cold_/bare_cold_/' >>"$RAW/cold.txt"
awk -v s="$ks_ms" 'BEGIN{printf "keystone_one_validation_ms=%.2f\n", s * 1000}' >>"$RAW/cold.txt"
sed 's/^/  /' "$RAW/cold.txt" >&2
fi

# stonegate's own counters, so that an anomaly (Keystone errors, 503s) shows in the report.
for a in "$SG_ADMIN" "$SGL_ADMIN"; do
  curl -sS --max-time 5 "http://127.0.0.1:$a/metrics" \
    | grep -E '^stonegate_(requests_total|keystone_requests_total|cache_lookups_total)' || true
done >"$RAW/stonegate-counters.txt"
curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$OS_AUTH_URL" | grep -q 200 \
  || log "WARNING: Keystone no longer answers at $OS_AUTH_URL: the Keystone-dependent cases are suspect"

# ------------------------------------------------------------ instructions per request
# Deterministic where wall clock is not: the server runs under callgrind, a
# fixed client (tools/src/bin/keepalive_client.rs: one keep-alive connection,
# requests one after another) sends CG_WARMUP requests (the token gets cached,
# connections pooled), the counters are zeroed, CG_REQUESTS more are sent, the
# counters dumped: instructions of the server process (all its threads) / N.
# cg_run NAME PORT READY_URL TOKEN_FILE|- CMD...
cg_run() {
  local name="$1" port="$2" ready="$3" tokf="$4" token="" pid out total allocs
  shift 4
  [[ "$tokf" != - ]] && token=$(cat "$tokf")
  out="$RAW/callgrind.out.$name"
  valgrind --tool=callgrind --callgrind-out-file="$out.%p" "$@" >"$RAW/callgrind-$name.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_code "$ready" 200 300 "$pid" || { tail -20 "$RAW/callgrind-$name.log" >&2; die "$name did not start under valgrind"; }
  BENCH_TOKEN="$token" timeout 600 "$BIN/keepalive_client" "127.0.0.1:$port" "$PATH_Q" "$CG_WARMUP" >/dev/null \
    || die "callgrind warm-up of $name: not every answer was 200"
  callgrind_control -z "$pid" >/dev/null
  BENCH_TOKEN="$token" timeout 1200 "$BIN/keepalive_client" "127.0.0.1:$port" "$PATH_Q" "$CG_REQUESTS" >/dev/null \
    || die "callgrind run of $name: not every answer was 200"
  callgrind_control -d "$pid" >/dev/null
  stop "$pid"
  total=$(awk '/^(summary|totals):/{print $2; exit}' "$out.$pid.1" 2>/dev/null || true)
  [[ -n "$total" ]] || die "no callgrind dump for $name ($out.$pid.1)"
  echo "${name}_instructions_per_request=$((total / CG_REQUESTS))" >>"$RAW/callgrind.txt"
  allocs=$(python3 "$BENCH_DIR/callgrind_allocs.py" "$out.$pid.1")
  awk -v a="$allocs" -v n="$CG_REQUESTS" -v k="$name" \
    'BEGIN{printf "%s_allocations_per_request=%.1f\n", k, a / n}' >>"$RAW/callgrind.txt"
}
if [[ "$CALLGRIND" == 1 ]]; then
  log "instructions per request (callgrind): $CG_WARMUP warm-up + $CG_REQUESTS measured requests, one keep-alive connection"
  : >"$RAW/callgrind.txt"
  CG_PORT=$(free_port); CG_ADMIN=$(free_port); CGB_PORT=$(free_port)
  write_config "$CG_PORT" "$CG_ADMIN" "$WORK/stonegate-callgrind.toml"
  STONEGATE_PASSWORD="$KEYSTONE_SVC_PASSWORD" RUST_LOG=warn cg_run stonegate "$CG_PORT" \
    "http://127.0.0.1:$CG_ADMIN/readyz" "$WORK/token-valid" \
    "$BIN/stonegate" serve --config "$WORK/stonegate-callgrind.toml"
  cg_run bare_proxy "$CGB_PORT" "http://127.0.0.1:$CGB_PORT/" - \
    "$BIN/bare_proxy" "127.0.0.1:$CGB_PORT" "http://127.0.0.1:$UP_PORT"
  sed 's/^/  /' "$RAW/callgrind.txt" >&2
fi

# ------------------------------------------------------------ system calls per request
# Also deterministic: strace -c -f counts the system calls of the server's
# threads while keepalive_client sends SC_REQUESTS requests on one keep-alive
# connection after a warm-up; stonegate (case c) beside nginx's hop (case g,
# its two workers; fewer requests than nginx's keepalive_requests of 1000).
SC_REQUESTS=900
# sc_run NAME PORT TOKEN_FILE|- PID...
sc_run() {
  local name="$1" port="$2" tokf="$3" token="" p spids=() files=() n
  shift 3
  [[ "$tokf" != - ]] && token=$(cat "$tokf")
  BENCH_TOKEN="$token" timeout 120 "$BIN/keepalive_client" "127.0.0.1:$port" "$PATH_Q" 50 >/dev/null \
    || die "strace warm-up of $name: not every answer was 200"
  for p in "$@"; do
    strace -c -f -p "$p" -o "$RAW/strace-$name.$p" 2>/dev/null &
    spids+=("$!"); files+=("$RAW/strace-$name.$p")
  done
  sleep 1
  BENCH_TOKEN="$token" timeout 300 "$BIN/keepalive_client" "127.0.0.1:$port" "$PATH_Q" "$SC_REQUESTS" >/dev/null \
    || die "strace run of $name: not every answer was 200"
  sleep 0.5
  kill -INT "${spids[@]}" 2>/dev/null || true
  wait "${spids[@]}" 2>/dev/null || true
  n=$(awk '$NF == "total" {s += $4} END {print s + 0}' "${files[@]}")
  awk -v n="$n" -v r="$SC_REQUESTS" -v k="$name" \
    'BEGIN{printf "%s_syscalls_per_request=%.2f\n", k, n / r}' >>"$RAW/syscalls.txt"
  cat "${files[@]}" >"$RAW/strace-$name.txt"; rm -f "${files[@]}"
}
if [[ "$SYSCALLS" == 1 ]]; then
  log "system calls per request (strace -c): $SC_REQUESTS requests, one keep-alive connection"
  : >"$RAW/syscalls.txt"
  sc_run stonegate "$SG_PORT" "$WORK/token-valid" "$SG_PID"
  # shellcheck disable=SC2046  # one pid per word
  sc_run nginx "$NG_PORT" - $(pgrep -P "$NG_PID")
  sed 's/^/  /' "$RAW/syscalls.txt" >&2
fi

# Everything below runs without the servers.
for p in "$SG_PID" "$SGL_PID" "$SGF_PID" "$SGM_PID" "$SGA_PID" "$SGP_PID" "$NG_PID" "$BARE_PID" "$TPC_PID" "$UP_PID"; do stop "$p"; done

# ------------------------------------------------------------ memory
if [[ "$MEM" == 1 ]]; then
log "memory: $MEM_ENTRIES identities in cache::Cache, then the same in a Vec"
timeout 600 "$BIN/cache_memory" "$MEM_ENTRIES" cache >"$RAW/mem-cache.txt"
timeout 600 "$BIN/cache_memory" "$MEM_ENTRIES" identities >"$RAW/mem-identities.txt"
grep -E 'bytes_per_entry|rss' "$RAW/mem-cache.txt" "$RAW/mem-identities.txt" | sed 's/^/  /' >&2
fi

# ------------------------------------------------------------ micro
if [[ "$MICRO" == 1 ]]; then
  log "criterion micro-benchmarks (benches/core.rs; 1 s warm-up, 3 s per benchmark)"
  rm -rf "$ROOT/target/criterion"
  timeout 1800 cargo bench --bench core -- --warm-up-time 1 --measurement-time 3 --noplot \
    >"$RAW/criterion.txt" 2>&1 || { tail -30 "$RAW/criterion.txt" >&2; log "cargo bench failed: report without micro-benchmarks"; MICRO=0; }
fi

# ------------------------------------------------------------ report
CMD_LINE="scripts/bench.sh"
for v in BENCH_CASES BENCH_KMW BENCH_COLD BENCH_MEM BENCH_CALLGRIND BENCH_SYSCALLS BENCH_MICRO BENCH_ROUNDS BENCH_DURATION; do
  if [[ -n "${!v:-}" ]]; then CMD_LINE="$v='${!v}' $CMD_LINE"; fi
done
python3 - "$RAW/env.json" <<EOF
import json, sys
notes = [
    "a: tools/src/bin/bench_upstream.rs, hyper 1 HTTP/1.1 keep-alive, answers 200 \"ok\".",
    "b: tools/src/bin/bare_proxy.rs, the same hyper-util server and legacy pooled client as "
    "src/proxy.rs (hop-by-hop headers, X-Forwarded-*), no auth.",
    "c: \`stonegate serve\` (online mode, include_service_catalog = false, RUST_LOG=warn: no "
    "access log) with a valid project-scoped token, cached after the first request.",
    "c_log: the same with RUST_LOG=info, one access log line per request written to a file.",
    "g: nginx $NGINX_VERSION \`proxy_pass\` to the same upstream, 2 worker processes, "
    "\`upstream { keepalive 64; }\`, HTTP/1.1 to the upstream, access log off: the hop an "
    "operator would run instead of the sidecar (the reference of issue 16).",
    "h: the same nginx with \`auth_request\` to stonegate's forward-auth endpoint (flavor "
    "nginx, its own stonegate, keep-alive 64) for every request, the 21 identity headers "
    "copied to the upstream request (auth_request_set + proxy_set_header); h_cache: the "
    "same with \`proxy_cache\` on the auth subrequest, keyed by token, method and URI, "
    "60 s (ingress-nginx's auth-cache-key); the script checks that a repeat is a HIT.",
    "Instructions per request: \`valgrind --tool=callgrind\` on the server process "
    "(all threads), tools/src/bin/keepalive_client.rs sending $CG_REQUESTS GETs one after "
    "another on one keep-alive connection, counters zeroed after $CG_WARMUP warm-up requests "
    "(callgrind_control -z, then -d).",
    "e: a random Fernet-shaped token: Keystone answers 404 once, then stonegate answers 401 "
    "from its negative cache (negative_ttl = 10 s).",
    "f: keystonemiddleware $KMW_VERSION auth_token (in-process token cache, "
    "include_service_catalog = false) around a WSGI app answering \"ok\", under gunicorn "
    "$GUNICORN_VERSION; sync and gthread (4 threads) with 2 and 4 workers were tried, each "
    "measured like the other cases; the best is reported.",
    "Every process (wrk with 2 threads, the proxy, the upstream) shares the same 2 cores: the "
    "proxy cases pay for the upstream and the load generator too.",
    "Keystone: the project harness (tests/keystone/keystone-up.sh), real Keystone 30.0.0 "
    "under uwsgi with an in-memory cache, on $KEYSTONE_URL.",
]
import os, platform
mem = int(open("/proc/meminfo").read().split()[1]) // (1024 * 1024)
json.dump({
    "date": "$(date -u +%Y-%m-%dT%H:%MZ)",
    "cpu": """$CPU""".strip(),
    "nproc": $(nproc),
    "kernel": "Linux " + platform.release(),
    "mem_gib": mem,
    "profile": "$PROFILE",
    "wrk": "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)",
    "threads": $THREADS, "connections": $CONNS, "rounds": $ROUNDS, "warmup_s": $WARMUP, "duration_s": $DURATION,
    "command": "$CMD_LINE",
    "nginx": "$NGINX_VERSION",
    "kmw_choice": """$KMW_BEST""",
    "micro": $MICRO == 1,
    "criterion_dir": "$ROOT/target/criterion",
    "notes": notes,
}, open(sys.argv[1], "w"), indent=1)
EOF
python3 "$BENCH_DIR/report.py" "$OUT"
log "wrote $OUT/results.md and $OUT/results.svg (raw data and logs in $RAW)"
