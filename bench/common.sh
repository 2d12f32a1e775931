# Sourced by the benchmark scripts: a private redis-server on a free port
# (no persistence), a fresh database on the shared PostgreSQL, and a cleanup
# on exit that stops what the script started (by PID, in $PIDS), stops that
# Redis and drops the database. Sets WORK, RPORT, DB, ADMIN, PIDS and the
# HANGAR_DATABASE_URL / HANGAR_REDIS_URL the binaries read.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d)
RPORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no --dir "$WORK" --daemonize yes --pidfile "$WORK/redis.pid" >/dev/null
DB="hangar_bench_$(date +%s)_$$"
ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
psql "$ADMIN" -qc "CREATE DATABASE $DB"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export HANGAR_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export HANGAR_REDIS_URL="redis://127.0.0.1:$RPORT"

# Every API request is authenticated, rate-limited and (writes) audited, as
# in production; the limits are set high enough never to refuse.
# BENCH_RATE_LIMIT=off switches the limiter off, to measure what it costs.
if [ "${BENCH_RATE_LIMIT:-on}" = off ]; then
  export HANGAR_RATE_LIMIT_READ=off HANGAR_RATE_LIMIT_WRITE=off
else
  export HANGAR_RATE_LIMIT_READ="1000000/s" HANGAR_RATE_LIMIT_WRITE="1000000/s"
fi
# The credential of the benchmark's requests (after `migrate`): an admin API
# key, as in production automation (looked up in PostgreSQL once, then
# answered from the API's verified-key cache, which polls Redis for
# revocations), or with BENCH_AUTH=jwt an HS256 JWT (verified in memory).
if [ "${BENCH_AUTH:-api_key}" = jwt ]; then
  export HANGAR_JWT_HS256_SECRET="bench-secret-bench-secret-bench-secret" HANGAR_JWT_ISSUER=bench HANGAR_JWT_AUDIENCE=hangar
  api_key() {
    python3 - <<'PY'
import base64, hashlib, hmac, json, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
now = int(time.time())
head = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b(json.dumps({"sub": "bench", "role": "admin", "iss": "bench", "aud": "hangar", "iat": now, "exp": now + 3600}).encode())
sig = b(hmac.new(b"bench-secret-bench-secret-bench-secret", f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
  }
else
  api_key() { "$BIN/hangar-api" create-api-key --name "bench-$$" --role admin 2>/dev/null; }
fi
