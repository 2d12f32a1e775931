#!/usr/bin/env bash
# Produces every figure in bench/RESULTS.md, in one run on one machine:
# Hangar (throughput + idle pickup), apalis-redis 1.0.0 and Celery 5, each
# against the same private redis-server (started here on a free loopback
# port, stopped by PID at the end) so the command counts are theirs alone.
#
#   bash bench/run.sh [JOBS] [CONCURRENCY]      # defaults: 20000 50
#
# Output: the RESULT lines on stdout, also saved to bench/out/<timestamp>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-20000}"
C="${2:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
OUT_DIR=bench/out
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ).txt"

cargo build --release --locked -p hangar-bench >&2
BIN="$CARGO_TARGET_DIR/release"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no --dir "$DIR" \
  --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
for _ in $(seq 1 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
cleanup() { kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
URL="redis://127.0.0.1:$PORT"

{
  echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores, $(redis-server --version | cut -d' ' -f3)"
  echo "# jobs=$JOBS concurrency=$C redis=$URL (private)"
  "$BIN/hangar-bench" throughput --redis-url "$URL" --jobs "$JOBS" --concurrency "$C"
  "$BIN/hangar-bench" pickup --redis-url "$URL" --samples 500
  # apalis-redis as shipped, at the same N (it wedges above ~8,000 due jobs)...
  "$BIN/apalis-redis-bench" --redis-url "$URL" --jobs "$JOBS" --concurrency "$C" --stall-secs 20 2>/dev/null
  # ...and below that limit, with its default 30 s heartbeat and a 100 ms one.
  "$BIN/apalis-redis-bench" --redis-url "$URL" --jobs 5000 --concurrency "$C" --stall-secs 45 2>/dev/null
  "$BIN/apalis-redis-bench" --redis-url "$URL" --jobs 5000 --concurrency "$C" --heartbeat-ms 100 2>/dev/null
  "$BIN/hangar-bench" throughput --redis-url "$URL" --jobs 5000 --concurrency "$C"
  if [ "${SKIP_CELERY:-0}" != 1 ]; then
    bash bench/celery/run.sh "$URL" "$JOBS"
  fi
} | tee "$OUT"
echo "saved to $OUT" >&2
