#!/usr/bin/env bash
# Job history at size (issue 17): JOBS job records over 90 days, loaded by
# COPY from bench/history_rows.sql (several ranges at once), then:
#
# Phase 1, the upgrade: a database as release 16 left it (one job_runs
# table) holding JOBS records; pgbench inserts as an old API binary does
# (RATE a second over 4 connections, a third with an idempotency key) while
# `hangar-api migrate` partitions the table. Prints the migration's time, the
# inserts' latency second by second (worst and p99) and whether every
# acknowledged insert is there. Then retention trims the old table (now the
# legacy partition) row by row: each batch's time, from the worker's log.
#
# Phase 2, steady state: a fresh database partitioned by week over the 90
# days (as one that ran partitioned since then is), the same JOBS records
# loaded through the partitioned table's triggers, plus the console's
# workspaces, events and costs (bench/console_seed.sql). Then every
# job-history endpoint (bench/history_queries.py, p99), every console page
# (bench/console_pages.py), the scheduler's repair passes and a retention run
# that drops the weeks past 80 days whole; EXPLAIN plans of the statements
# behind them.
#
# Uses the shared PostgreSQL (fresh databases, dropped after) and a private
# redis-server on a free port.
#
#   bash bench/history.sh [JOBS=10000000] [REPEAT=200] [RATE=200]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-10000000}" REPEAT="${2:-200}" RATE="${3:-200}"
BEFORE_PARTITIONING=20261206000016
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
cargo build --release --locked --bins -q
BIN="$CARGO_TARGET_DIR/release"
. bench/common.sh
APORT=$(free_port)
export HANGAR_BIND="127.0.0.1:$APORT" HANGAR_LOG_LEVEL=warn HANGAR_LOG_FORMAT=json
export HANGAR_AWS_ACCOUNTS='[{"name":"acct-00","regions":["us-east-1","eu-west-1","ap-southeast-2"]}]'
URL="http://127.0.0.1:$APORT"
COLS="id, kind, queue, payload, state, attempts, max_attempts, deliveries, progress, result, error, requested_by,
      request_id, idempotency_key, run_at, created_at, started_at, finished_at, updated_at, singleton_key,
      idempotency_scope, request_fingerprint"
sql() { psql -qAt -v ON_ERROR_STOP=1 "$HANGAR_DATABASE_URL" "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

# COPY the JOBS records in two ranges at once (one per core).
seed() {
  local half=$(( (JOBS + 1) / 2 )) start pids=()
  start=$(now)
  for range in "1 $half" "$((half + 1)) $JOBS"; do
    set -- $range
    (psql -qAt -v ON_ERROR_STOP=1 "$HANGAR_DATABASE_URL" -v jobs="$JOBS" -v lo="$1" -v hi="$2" -f bench/history_rows.sql \
       | psql -q -v ON_ERROR_STOP=1 "$HANGAR_DATABASE_URL" -c "COPY job_runs ($COLS) FROM STDIN") & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  echo "RESULT phase=$PHASE seeded=$JOBS copy_s=$(since "$start")"
  start=$(now)
  sql -c "VACUUM ANALYZE"
  echo "RESULT phase=$PHASE vacuum_analyze_s=$(since "$start")"
  sql -c "SELECT 'RESULT phase=$PHASE table=' || relname || ' rows=' || n_live_tup || ' size_mb='
                 || pg_total_relation_size(relid) / 1048576
            FROM pg_stat_user_tables WHERE n_live_tup > 0 AND relname LIKE 'job_%' ORDER BY relname"
}

start_api() {
  "$BIN/hangar-api" serve 2>"$WORK/api.log" & API_PID=$!; PIDS+=($API_PID)
  for _ in $(seq 1 100); do curl -fs "$URL/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
}

# Enqueues system.retention and runs a worker until it is finished; prints
# the job's result and the worker's per-batch times.
retention() {
  local days=$1 id state start
  id=$(curl -fsS -X POST "$URL/api/v1/jobs" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
         -d "{\"kind\":\"system.retention\",\"payload\":{\"job_runs_days\":$days,\"audit_events_days\":400}}" \
       | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')
  start=$(now)
  HANGAR_QUEUES="sync=1,reports=1,inference=1" HANGAR_LOG_LEVEL="warn,hangar_worker=debug,hangar_shared=debug" \
    "$BIN/hangar-worker" 2>"$WORK/worker.log" & local wpid=$!; PIDS+=($wpid)
  for _ in $(seq 1 36000); do
    state=$(sql -c "SELECT state FROM job_runs WHERE id = '$id'")
    case $state in succeeded|dead|cancelled) break ;; esac
    sleep 0.1
  done
  kill "$wpid"; wait "$wpid" 2>/dev/null || true
  echo "RESULT phase=$PHASE retention_days=$days state=$state wall_s=$(since "$start") result=$(sql -c "SELECT result FROM job_runs WHERE id = '$id'")"
  python3 - "$WORK/worker.log" "$PHASE" <<'PY'
import json, sys
batches = {}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", e)
    if f.get("message") == "retention batch":
        batches.setdefault(f["step"], []).append((float(f["ms"]), int(f["rows"])))
    if f.get("message") in ("job_runs partition past retention dropped", "partition past retention kept for records that must stay"):
        print("RESULT phase=%s %s" % (sys.argv[2], " ".join(f"{k}={v}" for k, v in f.items() if k != "message")))
for step, b in batches.items():
    ms, rows = sorted(t for t, _ in b), sorted(r for _, r in b)
    p99 = ms[max(0, int(len(ms) * 0.99) - 1)]
    print(f"RESULT phase={sys.argv[2]} retention_step={step} batches={len(ms)} rows={sum(rows)} median_rows={rows[len(rows) // 2]} "
          f"median_ms={ms[len(ms) // 2]:.1f} p99_ms={p99:.1f} max_ms={ms[-1]:.1f}")
PY
}

# ---------------------------------------------------------------- phase 1
PHASE=upgrade
"$BIN/hangar-api" migrate --to "$BEFORE_PARTITIONING" 2>/dev/null
seed
# The old binary's insert: a ULID of now, a third with an idempotency key
# (a sequence numbers them, so no two collide and every one must land).
sed 's/pg_temp\./public./' bench/ulid.sql | sql
sql -c "CREATE SEQUENCE public.pgb_seq"
cat >"$WORK/insert.sql" <<'SQL'
INSERT INTO job_runs (id, kind, queue, payload, state, max_attempts, requested_by, idempotency_key, idempotency_scope)
SELECT ulid_at(clock_timestamp(), n), 'system.noop', 'sync', '{}', 'queued', 3, 'bench:old-binary',
       CASE WHEN n % 3 = 0 THEN 'pgb-' || n END, CASE WHEN n % 3 = 0 THEN 'key:pgbench' END
  FROM (SELECT nextval('public.pgb_seq') AS n) AS s;
SQL
# pgbench runs for LOAD_S seconds (it writes its per-insert log only when
# it ends by itself); the migration must end well before.
LOAD_S="${LOAD_S:-300}"
pgbench -n -c 4 -j 2 -R "$RATE" -T "$LOAD_S" -l --log-prefix="$WORK/insert" -f "$WORK/insert.sql" \
  "$HANGAR_DATABASE_URL" >"$WORK/pgbench.out" 2>&1 & PGB=$!; PIDS+=($PGB)
sleep 5
MSTART=$(now)
HANGAR_LOG_LEVEL=info "$BIN/hangar-api" migrate 2>"$WORK/migrate.log"
MIGRATE_S=$(since "$MSTART")
MEND=$(now)
echo "RESULT phase=upgrade migrate_s=$MIGRATE_S"
wait "$PGB" || { cat "$WORK/pgbench.out"; exit 1; }
python3 - "$WORK" "$MSTART" "$MEND" <<'PY'
import glob, sys
work, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
# pgbench -l: client_id transaction_no time_us script_no time_epoch time_us
lat, during, failed = [], [], 0
for f in glob.glob(work + "/insert.[0-9]*"):
    for line in open(f):
        p = line.split()
        if len(p) < 6:
            continue
        if p[2] == "failed":
            failed += 1
            continue
        us, end = int(p[2]), int(p[4]) + int(p[5]) / 1e6
        lat.append(us / 1000)
        if t0 <= end <= t1 + 1:
            during.append(us / 1000)
def pct(xs, q):
    xs = sorted(xs)
    return xs[max(0, int(len(xs) * q) - 1)] if xs else float("nan")
print(f"RESULT phase=upgrade inserts={len(lat)} failed={failed} during_migration={len(during)} "
      f"during_p50_ms={pct(during, .5):.1f} during_p99_ms={pct(during, .99):.1f} during_max_ms={max(during, default=0):.1f} "
      f"all_p99_ms={pct(lat, .99):.1f}")
PY
grep -E "failed|aborted" "$WORK/pgbench.out" || true
sql -c "SELECT 'RESULT phase=upgrade recorded_inserts=' || count(*) FROM job_runs WHERE requested_by = 'bench:old-binary'"
sql -c "SELECT 'RESULT phase=upgrade partitions=' || count(*) || ' legacy_rows=' || (SELECT count(*) FROM job_runs_legacy)
          || ' idempotency_keys=' || (SELECT count(*) FROM job_idempotency)
          FROM pg_inherits WHERE inhparent = 'job_runs'::regclass"
TOKEN=$(api_key)
start_api
# Trims the five oldest days from the legacy partition, row by row.
retention 85
kill "$API_PID"; wait "$API_PID" 2>/dev/null || true

# ---------------------------------------------------------------- phase 2
PHASE=steady
psql "$ADMIN" -qc "DROP DATABASE $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$BIN/hangar-api" migrate 2>/dev/null
# A database partitioned for the last 90 days: the empty legacy partition
# gives way to a partition per week, back to the oldest record.
sql -f bench/partitions_90_days.sql
seed
START=$(now)
sql -v jobs=0 -v workspaces=50000 -f bench/console_seed.sql
sql -c "VACUUM ANALYZE"
echo "RESULT phase=steady console_seed_s=$(since "$START")"
TOKEN=$(api_key)
start_api
python3 bench/history_queries.py "$URL" "$TOKEN" "$REPEAT" | sed 's/^RESULT /RESULT phase=steady /'
python3 bench/console_pages.py "$URL" "$TOKEN" 40 | sed 's/^RESULT /RESULT phase=steady /'

# The repair loop: one pass after Redis lost everything (the open jobs are
# dispatched again), then passes with nothing to do.
HANGAR_REPAIR_INTERVAL_SECS=1 HANGAR_REPAIR_MIN_AGE_SECS=0 HANGAR_LOG_LEVEL="warn,hangar_scheduler=debug" \
  "$BIN/hangar-scheduler" 2>"$WORK/scheduler.log" & SPID=$!; PIDS+=($SPID)
sleep 25
kill "$SPID"; wait "$SPID" 2>/dev/null || true
python3 - "$WORK/scheduler.log" <<'PY'
import json, sys
passes = []
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", e)
    if str(f.get("message", "")).startswith("repair pass"):
        passes.append(f)
first, rest = passes[0], sorted(float(p["ms"]) for p in passes[1:])
print(f"RESULT phase=steady repair_first_pass scanned={first.get('scanned')} redispatched={first.get('redispatched', 0)} ms={float(first['ms']):.1f}")
print(f"RESULT phase=steady repair_steady_passes={len(rest)} scanned={passes[-1].get('scanned')} median_ms={rest[len(rest) // 2]:.1f} max_ms={rest[-1]:.1f}")
PY

# Retention: the weeks wholly older than 80 days are dropped whole.
retention 80

if [ "${EXPLAIN:-1}" = 1 ]; then
  echo "== EXPLAIN (ANALYZE, BUFFERS) of the statements behind the slowest answers"
  for q in \
    "SELECT id FROM job_runs WHERE payload @> '{\"account\":\"acct-07\"}' ORDER BY id DESC LIMIT 51" \
    "SELECT id FROM job_runs WHERE kind = 'sync.usage' AND state = 'dead' ORDER BY id DESC LIMIT 51" \
    "SELECT id FROM job_runs WHERE requested_by = 'jwt:alice' ORDER BY id DESC LIMIT 51" \
    "SELECT id FROM job_runs WHERE id = (SELECT id FROM job_runs ORDER BY id LIMIT 1 OFFSET 100)" \
    "SELECT id FROM job_runs WHERE state IN ('scheduled', 'queued', 'running', 'retrying') AND created_at < now() ORDER BY id LIMIT 500"; do
    echo "-- $q"
    sql -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $q"
  done
fi
