#!/usr/bin/env bash
# The queue engine on one Redis server and on a Redis Cluster, in one run on
# one machine: `hangar-bench throughput` and `pickup` against
#   - a private redis-server (AOF fsync'd every second), and
#   - a private cluster from scripts/redis-cluster (3 masters + 3 replicas,
#     the same AOF setting), where the bench queue's keys live on one master
#     and its replica replays every write,
# alternating RUNS times, so the machine's drift touches both alike. On 2
# cores the cluster's six servers share the cores with the producer and the
# workers: this measures what cluster mode costs on one host, not what a
# cluster of hosts can do.
#
#   bash bench/cluster.sh [JOBS] [CONCURRENCY] [RUNS]    # defaults: 20000 50 2
#
# BENCH_BIN=path/to/hangar-bench measures another build, and SINGLE_ONLY=1
# leaves the cluster out (a build from before cluster support cannot count
# a cluster's commands): how the A/B of the cluster change was run.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-20000}"
C="${2:-50}"
RUNS="${3:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --locked -p hangar-bench >&2
  BENCH_BIN="$CARGO_TARGET_DIR/release/hangar-bench"
fi
OUT_DIR=bench/out
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/cluster-$(date -u +%Y%m%dT%H%M%SZ).txt"

DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly yes --appendfsync everysec \
  --dir "$DIR" --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
cleanup() {
  kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
  bash scripts/redis-cluster stop "$DIR/cluster" || true
  rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 1 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
SINGLE="redis://127.0.0.1:$PORT"
CLUSTER=""
if [ "${SINGLE_ONLY:-0}" != 1 ]; then CLUSTER=$(bash scripts/redis-cluster start "$DIR/cluster"); fi

{
  echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores, $(redis-server --version | cut -d' ' -f3), bench=$BENCH_BIN"
  echo "# jobs=$JOBS concurrency=$C runs=$RUNS; single=$SINGLE; cluster=3 masters + 3 replicas"
  for run in $(seq 1 "$RUNS"); do
    echo "# run $run: one server"
    "$BENCH_BIN" throughput --redis-url "$SINGLE" --jobs "$JOBS" --concurrency "$C"
    if [ "${SINGLE_ONLY:-0}" != 1 ]; then
      echo "# run $run: cluster"
      "$BENCH_BIN" throughput --redis-url "$CLUSTER" --jobs "$JOBS" --concurrency "$C"
    fi
  done
  echo "# idle pickup: one server"
  "$BENCH_BIN" pickup --redis-url "$SINGLE" --samples 500
  if [ "${SINGLE_ONLY:-0}" != 1 ]; then
    echo "# idle pickup: cluster"
    "$BENCH_BIN" pickup --redis-url "$CLUSTER" --samples 500
  fi
} | tee "$OUT"
echo "saved to $OUT" >&2
