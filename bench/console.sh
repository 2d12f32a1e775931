#!/usr/bin/env bash
# The web console at size: JOBS job records (90 days of them) and WORKSPACES
# workspaces (with connections, history, usage, CloudTrail events and costs)
# seeded into a fresh database by bench/console_seed.sql, then every console
# page and filter timed against the release hangar-api by
# bench/console_pages.py (a real console session; median, p95 and worst per
# page; the first page load's weight). Uses the shared PostgreSQL (a fresh
# database, dropped after) and a private redis-server on a free port.
#
#   bash bench/console.sh [JOBS=1000000] [WORKSPACES=50000] [REPEAT=40]
#
# EXPLAIN=1 also prints the plans of the queries the slowest pages run.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-1000000}" WORKSPACES="${2:-50000}" REPEAT="${3:-40}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
cargo build --release --locked --bins -q
BIN="$CARGO_TARGET_DIR/release"
. bench/common.sh
APORT=$(free_port)
export HANGAR_BIND="127.0.0.1:$APORT" HANGAR_LOG_LEVEL=warn
export HANGAR_AWS_ACCOUNTS='[{"name":"acct-00","regions":["us-east-1","eu-west-1","ap-southeast-2"]},{"name":"acct-01","regions":["us-east-1","eu-west-1","ap-southeast-2"]},{"name":"acct-02","regions":["us-east-1","eu-west-1","ap-southeast-2"]},{"name":"acct-03","regions":["us-east-1","eu-west-1","ap-southeast-2"]},{"name":"acct-04","regions":["us-east-1","eu-west-1","ap-southeast-2"]}]'
URL="http://127.0.0.1:$APORT"
"$BIN/hangar-api" migrate 2>/dev/null
START=$(date +%s)
psql -q "$HANGAR_DATABASE_URL" -v ON_ERROR_STOP=1 -v jobs="$JOBS" -v workspaces="$WORKSPACES" -f bench/console_seed.sql
# As tables are in steady state (autovacuum has run), not as a bulk load leaves them.
psql -q "$HANGAR_DATABASE_URL" -c "VACUUM ANALYZE"
echo "seeded $JOBS jobs and $WORKSPACES workspaces in $(( $(date +%s) - START )) s" >&2
psql -At "$HANGAR_DATABASE_URL" -c "SELECT 'RESULT table=' || relname || ' rows=' || n_live_tup || ' size_mb=' || pg_total_relation_size(relid) / 1048576
                                     FROM pg_stat_user_tables WHERE n_live_tup > 0 ORDER BY n_live_tup DESC LIMIT 8"
TOKEN=$(api_key)
"$BIN/hangar-api" serve 2>"$WORK/api.log" & PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "$URL/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
python3 bench/console_pages.py "$URL" "$TOKEN" "$REPEAT"
if [ "${EXPLAIN:-0}" = 1 ]; then
  psql "$HANGAR_DATABASE_URL" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM job_runs WHERE payload @> '{\"account\":\"acct-07\"}' ORDER BY id DESC LIMIT 51"
fi
