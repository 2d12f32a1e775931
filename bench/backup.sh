#!/usr/bin/env bash
# Backup and restore at size: JOBS job records over 90 days (as
# bench/history.sh loads them: bench/history_rows.sql into weekly
# partitions) plus WORKSPACES synced workspaces with their events and costs
# (bench/console_seed.sql), then `scripts/backup` and `scripts/restore`
# into a fresh database, each timed, and the restored row counts compared
# with the original's. These are the RPO/RTO figures of docs/operations.md.
#
# Uses the shared PostgreSQL (fresh databases, dropped after).
#
#   bash bench/backup.sh [JOBS=1000000] [WORKSPACES=50000]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-1000000}" WORKSPACES="${2:-50000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
# Only `hangar-api migrate` is needed, and nothing of it is timed.
cargo build --locked -q -p hangar-api --bin hangar-api
BIN="$CARGO_TARGET_DIR/debug"
. bench/common.sh
COLS="id, kind, queue, payload, state, attempts, max_attempts, deliveries, progress, result, error, requested_by,
      request_id, idempotency_key, run_at, created_at, started_at, finished_at, updated_at, singleton_key,
      idempotency_scope, request_fingerprint"
sql() { psql -qAt -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
counts() {
  sql "$1" -c "SELECT string_agg(t || '=' || n, ' ' ORDER BY t) FROM (
                 SELECT 'job_runs' AS t, count(*) AS n FROM job_runs
                 UNION ALL SELECT 'workspaces', count(*) FROM workspaces
                 UNION ALL SELECT 'audit_events', count(*) FROM audit_events
                 UNION ALL SELECT 'cost_daily', count(*) FROM cost_daily
                 UNION ALL SELECT 'job_idempotency', count(*) FROM job_idempotency) c"
}

"$BIN/hangar-api" migrate 2>/dev/null
sql "$HANGAR_DATABASE_URL" -f bench/partitions_90_days.sql
START=$(now)
sql "$HANGAR_DATABASE_URL" -v jobs="$JOBS" -v lo=1 -v hi="$JOBS" -f bench/history_rows.sql \
  | sql "$HANGAR_DATABASE_URL" -c "COPY job_runs ($COLS) FROM STDIN"
sql "$HANGAR_DATABASE_URL" -v jobs=0 -v workspaces="$WORKSPACES" -f bench/console_seed.sql
sql "$HANGAR_DATABASE_URL" -c "VACUUM ANALYZE"
echo "RESULT seeded jobs=$JOBS workspaces=$WORKSPACES seed_s=$(since "$START")"
BEFORE=$(counts "$HANGAR_DATABASE_URL")
SIZE=$(sql "$HANGAR_DATABASE_URL" -c "SELECT pg_database_size(current_database()) / 1048576")
echo "RESULT database_mb=$SIZE $BEFORE"

export HANGAR_REPORTS_URL="file://$WORK/reports"
mkdir -p "$WORK/reports" && head -c 10485760 /dev/urandom > "$WORK/reports/report-sample.bin"
START=$(now)
bash scripts/backup "$WORK/backup" >/dev/null
echo "RESULT backup_s=$(since "$START") dump_mb=$(( $(stat -c %s "$WORK/backup/database.dump") / 1048576 )) reports_mb=$(( $(stat -c %s "$WORK/backup/reports.tar.gz") / 1048576 ))"

RESTORED="${DB}_restored"
export HANGAR_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$RESTORED" HANGAR_REPORTS_URL="file://$WORK/restored-reports"
trap 'psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $RESTORED WITH (FORCE)" || true; cleanup' EXIT
START=$(now)
bash scripts/restore "$WORK/backup" 2>/dev/null
echo "RESULT restore_s=$(since "$START") (checksums, pg_restore in one transaction, ANALYZE, report files)"
AFTER=$(counts "$HANGAR_DATABASE_URL")
cmp -s "$WORK/reports/report-sample.bin" "$WORK/restored-reports/report-sample.bin" && same=yes || same=no
echo "RESULT restored $AFTER report_file_identical=$same"
[ "$BEFORE" = "$AFTER" ] && [ "$same" = yes ] && echo "RESULT restored_equal=yes" || { echo "RESULT restored_equal=NO"; exit 1; }
