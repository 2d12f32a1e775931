#!/usr/bin/env bash
# Redis memory per job (sizing Redis, docs/operations.md "Sizing"): JOBS
# jobs enqueued as the API enqueues syncs (payload, request id, idempotency
# key), `INFO memory` read, then all run and kept as finished (as the queue
# keeps them: a day, at most 100,000 per queue, by default), read again. Against a private
# redis-server on a free loopback port, stopped by PID at the end.
#
#   bash bench/redis-memory.sh [JOBS=200000] [--traceparent]
# (--traceparent: each job carries a W3C traceparent, as with tracing on)
#
# Memory does not depend on how the client was compiled, so this builds
# hangar-bench in the debug profile (already built by the test suite)
# instead of a 12-minute release build.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-200000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
cargo build --locked -q -p hangar-bench --bin hangar-bench
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no --dir "$DIR" \
  --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
cleanup() { kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 1 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(redis-server --version | cut -d' ' -f3) $(redis-cli -p "$PORT" info memory | grep -E '^mem_allocator' | tr -d '\r')"
"$CARGO_TARGET_DIR/debug/hangar-bench" memory --redis-url "redis://127.0.0.1:$PORT" --jobs "$JOBS" ${2:+"$2"}
