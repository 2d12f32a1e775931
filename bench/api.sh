#!/usr/bin/env bash
# API and end-to-end benchmark with the real release binaries:
#  1. enqueue: wrk (a separate process) POSTs system.noop jobs to hangar-api
#     for DURATION seconds with CONNS connections; no worker runs;
#  2. drain: hangar-worker starts and works through that backlog;
#  3. end to end: wrk POSTs for DURATION seconds while the worker runs; rate =
#     jobs / (last finished_at - first created_at), from job_runs;
#  4. worker memory (VmRSS): a fresh worker with nothing to do, the worker
#     idle again after the drain, and its peak during the end-to-end phase.
# Uses the shared PostgreSQL (a fresh database, dropped after) and a private
# redis-server on a free port (stopped by PID after).
#
#   bash bench/api.sh [DURATION=10] [CONNS=32]
# (BENCH_BIN_DIR=DIR uses the binaries in DIR; BENCH_LOG_LEVEL sets
# HANGAR_LOG_LEVEL, warn by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-32}"
command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
. bench/bins.sh
. bench/common.sh
APORT=$(free_port)

export HANGAR_BIND="127.0.0.1:$APORT"
# BENCH_LOG_LEVEL=info makes the request spans exist (bench/traces.sh).
export HANGAR_LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}" HANGAR_DB_MAX_CONNECTIONS=16 HANGAR_QUEUES="sync=50,reports=1,inference=1"
URL="http://127.0.0.1:$APORT"
"$BIN/hangar-api" migrate 2>/dev/null
TOKEN=$(api_key)
AUTH="Authorization: Bearer $TOKEN"
"$BIN/hangar-api" serve 2>"$WORK/api.log" & PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "$URL/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"kind":"system.noop"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN_HERE"
LUA
sed -i "s/TOKEN_HERE/$TOKEN/" "$WORK/post.lua"

# wrk's summary -> "rate p50_ms p99_ms non2xx"
parse_wrk() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
p = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", t, re.M))
rate = re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)
non = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{float(rate):.0f} {ms(p['50']):.2f} {ms(p['99']):.2f} {non.group(1) if non else 0}")
PY
}
sql() { psql "$HANGAR_DATABASE_URL" -Atc "$1"; }
# Waits until every recorded job succeeded (at most 300 s).
wait_all_succeeded() {
  local deadline=$((SECONDS + 300))
  while [ "$(sql "SELECT count(*) FROM job_runs WHERE state <> 'succeeded'")" != 0 ]; do
    if [ $SECONDS -gt $deadline ]; then
      echo "bench/api.sh: jobs not finished after 300 s:" >&2; sql "SELECT state, count(*) FROM job_runs GROUP BY 1" >&2; exit 1
    fi
    sleep 0.2
  done
}
# CPU seconds (user + system) used so far by the API, Redis, every
# PostgreSQL process and wrk's host share: where phase 1's time goes.
cpu_secs() { awk '{t += $14 + $15} END {printf "%.2f", t / 100}' "$@" 2>/dev/null; }
cpu_snapshot() {
  local pg; pg=$(pgrep -d' ' -x postgres | sed 's/\([0-9]*\)/\/proc\/\1\/stat/g')
  echo "$(cpu_secs "/proc/$API_PID/stat") $(cpu_secs "/proc/$(cat "$WORK/redis.pid")/stat") $(cpu_secs $pg) $(awk '/^cpu / {printf "%.2f", ($2+$3+$4+$6+$7+$8)/100}' /proc/stat)"
}
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# 1. enqueue (with BENCH_PERF=FILE: the API process profiled meanwhile with
# perf, call graphs, and the top of its report written to FILE)
API_PID=${PIDS[-1]}
if [ -n "${BENCH_PERF:-}" ]; then
  command -v perf >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
  perf record -q -F 499 -g -p "$API_PID" -o "$WORK/perf.data" -- sleep "$DURATION" 2>/dev/null & PERF_PID=$!
fi
read -r C0_API C0_REDIS C0_PG C0_ALL <<<"$(cpu_snapshot)"
wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$URL/api/v1/jobs" >"$WORK/wrk1.txt"
read -r C1_API C1_REDIS C1_PG C1_ALL <<<"$(cpu_snapshot)"
read -r RATE P50 P99 NON <<<"$(parse_wrk "$WORK/wrk1.txt")"
BACKLOG=$(sql "SELECT count(*) FROM job_runs")
if [ -n "${BENCH_PERF:-}" ]; then
  wait "$PERF_PID" || true
  perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0.7 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | sed 's/ *-  *- *$//; s/ *$//' >"$BENCH_PERF" || true
  perf report -i "$WORK/perf.data" --stdio --children --sort symbol --percent-limit 3 -g none 2>/dev/null \
    | grep -E '^ +[0-9.]+%' >"$BENCH_PERF.children" || true
fi
echo "RESULT system=hangar-api conns=$CONNS duration_s=$DURATION enqueue_per_s=$RATE p50_ms=$P50 p99_ms=$P99 non2xx=$NON recorded=$BACKLOG"
python3 - "$DURATION" "$C0_API" "$C1_API" "$C0_REDIS" "$C1_REDIS" "$C0_PG" "$C1_PG" "$C0_ALL" "$C1_ALL" <<'PY'
import sys
d, *v = map(float, sys.argv[1:])
api, redis, pg, total = (v[i + 1] - v[i] for i in range(0, 8, 2))
rest = total - api - redis - pg
print(f"RESULT phase=enqueue cpu_cores_used api={api/d:.2f} postgres={pg/d:.2f} redis={redis/d:.2f} other_incl_wrk={rest/d:.2f} of 2 (from /proc, {d:.0f} s)")
PY

# 4a. memory of a fresh worker with nothing to do (queues other than the backlog's)
"$BIN/hangar-worker" --queues reports=1,inference=1 2>/dev/null & FPID=$!; PIDS+=($FPID)
sleep 3
FRESH=$(rss_mb "$FPID")
kill -TERM "$FPID"; wait "$FPID" 2>/dev/null || true

# 2. drain through the worker binary
"$BIN/hangar-worker" 2>"$WORK/worker.log" & WPID=$!; PIDS+=($WPID)
T0=$(date +%s.%N)
wait_all_succeeded
T1=$(date +%s.%N)
DRAIN=$(python3 -c "print(f'{$BACKLOG/($T1-$T0):.0f}')")
echo "RESULT system=hangar-worker drain_per_s=$DRAIN jobs=$BACKLOG (backlog from phase 1, worker start to last record)"

# 4b. the same worker, idle again after the drain
sleep 2
IDLE=$(rss_mb "$WPID")

# 3. end to end while the worker runs; sample worker RSS
( PEAK=0; while kill -0 "$WPID" 2>/dev/null && [ ! -f "$WORK/stop-sampling" ]; do
    R=$(awk '/VmRSS/ {print $2}' "/proc/$WPID/status"); [ "$R" -gt "$PEAK" ] && PEAK=$R; echo "$PEAK" >"$WORK/peak"; sleep 0.1; done ) &
SAMPLER=$!
MARK=$(sql "SELECT now()")
read -r E0_API E0_REDIS E0_PG E0_ALL <<<"$(cpu_snapshot)"; E0_W=$(cpu_secs "/proc/$WPID/stat")
wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$URL/api/v1/jobs" >"$WORK/wrk2.txt"
read -r E1_API E1_REDIS E1_PG E1_ALL <<<"$(cpu_snapshot)"; E1_W=$(cpu_secs "/proc/$WPID/stat")
wait_all_succeeded
touch "$WORK/stop-sampling"; wait "$SAMPLER" 2>/dev/null || true
read -r N E2E <<<"$(sql "SELECT count(*), round(count(*) / extract(epoch FROM max(finished_at) - min(created_at))) FROM job_runs WHERE created_at >= '$MARK'" | tr '|' ' ')"
read -r RATE2 P50B P99B NON2 <<<"$(parse_wrk "$WORK/wrk2.txt")"
echo "RESULT system=hangar e2e_via_api_per_s=$E2E jobs=$N enqueue_while_running_per_s=$RATE2 p50_ms=$P50B p99_ms=$P99B non2xx=$NON2"
python3 - "$DURATION" "$E0_API" "$E1_API" "$E0_REDIS" "$E1_REDIS" "$E0_PG" "$E1_PG" "$E0_ALL" "$E1_ALL" "$E0_W" "$E1_W" <<'PY'
import sys
d, *v = map(float, sys.argv[1:])
api, redis, pg, total, worker = (v[i + 1] - v[i] for i in range(0, 10, 2))
rest = total - api - redis - pg - worker
print(f"RESULT phase=e2e cpu_cores_used api={api/d:.2f} worker={worker/d:.2f} postgres={pg/d:.2f} redis={redis/d:.2f} other_incl_wrk={rest/d:.2f} of 2 (from /proc, the {d:.0f} s of wrk)")
PY
echo "RESULT system=hangar-worker rss_fresh_idle_mb=$FRESH rss_idle_after_drain_mb=$IDLE rss_peak_e2e_mb=$(awk '{printf "%.1f", $1/1024}' "$WORK/peak")"
