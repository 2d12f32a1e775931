#!/usr/bin/env bash
# Report jobs with the real release binaries: N workspaces (with tags, a
# last connection and 20 connected hours this month each) in a fresh
# database, then `report.inventory` as CSV, JSON and XLSX and
# `report.billing_mode` as CSV (sessions and billable hours rebuilt from
# every workspace's hourly masks), each asked for through the API and written by hangar-worker
# (reports=1) to a local report store. Per report: rows, file size, rows/s
# (the job's started_at to finished_at, as recorded), and the worker's RSS
# growth over its idle size while writing it (sampled every 50 ms).
# Uses the shared PostgreSQL (a fresh database, dropped after) and a private
# redis-server on a free port (stopped by PID after).
#
#   bash bench/reports.sh [N=50000]
#
# REPORTS="inventory:csv" runs only the listed type:format pairs (and no
# Python baseline); PROFILE=1 records the worker with `perf record` into
# bench/out/reports.perf.data while they run.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-50000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
cargo build --release --locked --bins -q
BIN="$CARGO_TARGET_DIR/release"
. bench/common.sh
APORT=$(free_port)
export HANGAR_BIND="127.0.0.1:$APORT" HANGAR_LOG_LEVEL=warn HANGAR_QUEUES="sync=1,reports=1,inference=1"
export HANGAR_REPORTS_URL="file://$WORK/reports"
URL="http://127.0.0.1:$APORT"
sql() { psql "$HANGAR_DATABASE_URL" -Atc "$1"; }
"$BIN/hangar-api" migrate 2>/dev/null
sql "INSERT INTO workspaces (account, region, workspace_id, directory_id, user_name, ip_address, state, bundle_id,
                             computer_name, running_mode, auto_stop_timeout_minutes, compute_type, tags)
     SELECT 'acct-' || (n % 10), 'eu-west-1', 'ws-' || lpad(n::text, 8, '0'), 'd-' || (n % 7), 'user' || n,
            '10.0.' || (n % 250) || '.' || (n % 200), 'AVAILABLE', 'wsb-' || (n % 5), 'PC-' || n, 'AUTO_STOP', 60,
            'STANDARD', jsonb_build_object('team', 'team-' || (n % 20), 'cost_center', (n % 90)::text)
     FROM generate_series(1, $N) AS n;
     INSERT INTO workspace_connections (account, region, workspace_id, connection_state, last_user_connection_at)
     SELECT account, region, workspace_id, 'DISCONNECTED', now() - (random() * interval '90 days') FROM workspaces;
     INSERT INTO workspace_usage (account, region, workspace_id, hour, periods)
     SELECT account, region, workspace_id, date_trunc('month', now()) + make_interval(hours => h * 3), 4095 - (h % 7)
     FROM workspaces, generate_series(0, 19) AS h;
     INSERT INTO sync_cursors (account, region, kind, position)
     SELECT DISTINCT account, region, 'sync.usage', now() FROM workspaces;" >/dev/null
# As a synced table is in steady state (autovacuum has run; hint bits set),
# not as a bulk load leaves it for its first reader.
sql "VACUUM ANALYZE" >/dev/null
TOKEN=$(api_key)
"$BIN/hangar-api" serve 2>"$WORK/api.log" & PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "$URL/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/hangar-worker" 2>"$WORK/worker.log" & WPID=$!; PIDS+=($WPID)
sleep 2
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$WPID/status"; }
IDLE=$(rss_kb)

if [ "${PROFILE:-0}" = 1 ]; then
  mkdir -p bench/out
  perf record -q -e cpu-clock -p "$WPID" -o bench/out/reports.perf.data 2>/dev/null & PERF=$!
  sleep 0.5
fi
for RUN in ${REPORTS:-inventory:csv inventory:json inventory:xlsx billing_mode:csv}; do
  TYPE=${RUN%%:*} FORMAT=${RUN##*:}
  ID=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -X POST "$URL/api/v1/reports" \
        -d "{\"type\": \"$TYPE\", \"format\": \"$FORMAT\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')
  PEAK=$IDLE
  while [ "$(sql "SELECT state FROM job_runs WHERE id = '$ID'")" != succeeded ]; do
    R=$(rss_kb); [ "$R" -gt "$PEAK" ] && PEAK=$R
    sleep 0.05
  done
  read -r ROWS BYTES SECS <<<"$(sql "SELECT r.row_count, r.size_bytes, extract(epoch FROM j.finished_at - j.started_at)
                                     FROM reports r JOIN job_runs j USING (id) WHERE id = '$ID'" | tr '|' ' ')"
  python3 - "$FORMAT" "$ROWS" "$BYTES" "$SECS" "$IDLE" "$PEAK" "$TYPE" <<'PY'
import sys
fmt, rows, size, secs, idle, peak = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print(f"RESULT report={sys.argv[7]} format={fmt} rows={rows} bytes={size} seconds={secs:.2f} rows_per_s={rows / secs:.0f} "
      f"worker_rss_idle_mb={idle / 1024:.1f} worker_rss_growth_mb={(peak - idle) / 1024:.1f}")
PY
done
if [ -n "${PERF:-}" ]; then
  kill -INT "$PERF"; wait "$PERF" || true
  echo "profile: perf report -i bench/out/reports.perf.data --no-children --sort dso,symbol" >&2
fi

# The Python baseline, the same rows through openpyxl's write-only workbook.
[ -n "${REPORTS:-}" ] || python3 bench/xlsx_baseline.py "$N" "$WORK/baseline.xlsx"
