#!/usr/bin/env bash
# Fleet benchmark: the WorkSpaces inventory of a large estate found through
# AWS Organizations, synced by real processes against the emulator with the
# DEFAULT request rates (HANGAR_AWS_RATES unset).
#
#   ACCOUNTS accounts (the organization's management account and its
#   members) x the regions in REGIONS x PER workspaces each (defaults:
#   100 x 3 x 500 = 150,000 workspaces, 2 tags each), discovered by a real
#   hangar-scheduler through organizations:ListAccounts, each member synced
#   through the organization role (sts:AssumeRole), by WORKERS hangar-worker
#   processes running SYNC_CONCURRENCY sync jobs each.
#
# The emulator enforces AWS's documented quotas per account and region (every
# WorkSpaces call together: 2/s, bursts of 5; see
# shared/src/config/aws_rates.rs), so a throttle means the shared limiter let
# the workers together go too fast. A sync mostly waits for its turn, so the
# workers run many side by side (SYNC_CONCURRENCY).
#
# Runs, each a "sync all" of sync.workspaces (one job per account and region):
#   1. empty tables: every workspace and its tags read and inserted;
#   2. nothing changed in AWS: the hourly sync of a steady fleet;
#   3. every workspace's tags older than HANGAR_TAGS_REFRESH_SECS: the daily
#      tag refresh, the heaviest hourly sync of a steady fleet.
# Per run: wall time (first job created to last finished), AWS requests,
# throttles, time waiting for the limiter, DB round trips and reads, rows
# written; each worker's CPU seconds and peak RSS. Then the API's inventory
# listing (GET /api/v1/workspaces, every filter) over the 150,000 rows: median
# and p99 (bench/inventory_queries.py).
#
#   bash bench/fleet.sh [ACCOUNTS=100] [PER=500]
#   env: REGIONS (us-east-1,us-west-2,eu-west-1), WORKERS (2),
#        SYNC_CONCURRENCY (150), PROFILE (release), REPEAT (200)
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS="${1:-100}"
PER="${2:-500}"
REGIONS="${REGIONS:-us-east-1,us-west-2,eu-west-1}"
WORKERS="${WORKERS:-2}"
CONC="${SYNC_CONCURRENCY:-150}"
PROFILE="${PROFILE:-release}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
if [ "$PROFILE" = release ]; then cargo build --release --locked --bins -q; else cargo build --locked --bins -q; fi
BIN="$CARGO_TARGET_DIR/$PROFILE"
. bench/common.sh
. bench/emulator.sh
PSQL=(psql "$HANGAR_DATABASE_URL" -qAt)

# The organization and its fleet, seeded in the emulator's memory.
python3 - "$MOTO" "$ACCOUNTS" "$PER" "$REGIONS" >&2 <<'PY'
import json, sys, time, urllib.request
moto, accounts, per, regions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
def post(path, body):
    req = urllib.request.Request(f"{moto}/{path}", json.dumps(body).encode(), {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=600))
management = "123456789012"
members = [{"id": f"{200000000000 + i:012d}", "name": f"member-{i:03d}"} for i in range(1, accounts)]
post("seed/organization", {"accounts": members})
started = time.monotonic()
for account in [management] + [m["id"] for m in members]:
    for region in regions:
        post("seed/workspaces", {"account": account, "region": region, "directories": 2,
                                 "workspaces": per, "bundles": 2, "tags_per_workspace": 2})
print(f"seeded {accounts} accounts x {len(regions)} regions x {per} workspaces "
      f"in {time.monotonic() - started:.0f} s", file=sys.stderr)
# AWS's documented quotas: every WorkSpaces call of an account and region
# together 2/s with bursts of 5; ListAccounts 8/s with bursts of 12.
post("config", {"operation_rates": {"workspaces": {"rate": 2, "burst": 5},
                                    "ListAccounts": {"rate": 8, "burst": 12}}})
PY

export HANGAR_BIND="127.0.0.1:$APORT" HANGAR_LOG_LEVEL=warn HANGAR_LEASE_SECS=30
export HANGAR_QUEUES="sync=$CONC" HANGAR_SCHEDULES_FILE=none
export HANGAR_AWS_ACCOUNTS="" HANGAR_AWS_ORGANIZATION_ROLE=HangarFleet HANGAR_AWS_REGIONS="$REGIONS"
export AWS_ENDPOINT_URL="http://127.0.0.1:$MPORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset HANGAR_AWS_RATES
URL="http://127.0.0.1:$APORT"
"$BIN/hangar-api" migrate 2>/dev/null
AUTH="Authorization: Bearer $(api_key)"
"$BIN/hangar-scheduler" run 2>"$WORK/scheduler.log" & PIDS+=($!)
for _ in $(seq 1 300); do
  [ "$("${PSQL[@]}" -c 'SELECT count(*) FROM aws_org_accounts')" = "$ACCOUNTS" ] && break
  sleep 0.2
done
echo "organization: $("${PSQL[@]}" -c 'SELECT count(*) FROM aws_org_accounts') accounts discovered" >&2
"$BIN/hangar-api" serve 2>"$WORK/api.log" & PIDS+=($!)
WPIDS=()
for i in $(seq 1 "$WORKERS"); do
  "$BIN/hangar-worker" run 2>"$WORK/worker$i.log" & PIDS+=($!); WPIDS+=($!)
done
for _ in $(seq 1 100); do curl -fs "$URL/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done

# CPU seconds (user + system) of a process so far.
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

sync_all() {
  local label="$1" t0 n done_n before=() i
  for i in "${!WPIDS[@]}"; do before[$i]=$(cpu "${WPIDS[$i]}"); done
  post stats/reset '{}' >/dev/null
  t0=$("${PSQL[@]}" -c 'SELECT now()')
  n=$(curl -fsS -H "$AUTH" -X POST "$URL/api/v1/syncs/workspaces" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
  while :; do
    done_n=$("${PSQL[@]}" -c "SELECT count(*) FROM job_runs WHERE kind = 'sync.workspaces' AND created_at >= '$t0' AND state IN ('succeeded', 'dead', 'cancelled')")
    [ "$done_n" -ge "$n" ] && break
    sleep 1
  done
  {
    for i in "${!WPIDS[@]}"; do
      echo "worker$((i + 1)) cpu_s=$(awk -v a="$(cpu "${WPIDS[$i]}")" -v b="${before[$i]}" 'BEGIN{printf "%.1f", a - b}') \
peak_rss_mb=$(awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/${WPIDS[$i]}/status") \
rss_mb=$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/${WPIDS[$i]}/status")"
    done
  } >"$WORK/$label.cpu"
  "${PSQL[@]}" -F ' ' -c "
    SELECT count(*), count(*) FILTER (WHERE state = 'succeeded'),
           round(extract(epoch FROM max(finished_at) - min(created_at))::numeric, 1),
           sum((result->'stats'->>'aws_requests')::bigint), sum((result->'stats'->>'aws_throttled')::bigint),
           sum((result->'stats'->>'aws_retries')::bigint),
           round(sum((result->'stats'->>'rate_limit_wait_ms')::numeric) / 1000, 0),
           sum((result->'stats'->>'db_round_trips')::bigint), sum((result->'stats'->>'db_reads')::bigint),
           sum((result->'stats'->>'rows_written')::bigint), sum((result->'stats'->>'tags_kept')::bigint),
           round(max((result->>'elapsed_ms')::numeric) / 1000, 1),
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY (result->>'elapsed_ms')::numeric))::numeric / 1000, 1)
    FROM job_runs WHERE kind = 'sync.workspaces' AND created_at >= '$t0'" >"$WORK/$label.sum"
  curl -fsS "$MOTO/stats" >"$WORK/$label.stats.json"
  echo "$label: $(cat "$WORK/$label.sum")" >&2
}

sync_all run1
sync_all run2
# Every workspace's tags as old as the refresh period: the next sync reads them all.
"${PSQL[@]}" -c "UPDATE workspaces SET tags_refreshed_at = now() - interval '25 hours'"
sync_all run3

# The listing as the syncs left the tables (autovacuum may be at work: run 3
# left a dead version of every workspace row), with the table statistics and
# the plan of one list query; then again after VACUUM ANALYZE.
KEY="$(printf '%s' "$AUTH" | sed 's/^Authorization: Bearer //')"
"${PSQL[@]}" -F ' ' -c "SELECT relname, n_live_tup, n_dead_tup, coalesce(last_autovacuum::text, 'never'),
    coalesce(last_autoanalyze::text, 'never') FROM pg_stat_user_tables
    WHERE relname IN ('workspaces', 'workspace_connections') ORDER BY relname" >"$WORK/tables.txt"
"${PSQL[@]}" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
    SELECT w.workspace_id, c.connection_state FROM workspaces w
    LEFT JOIN workspace_connections c USING (account, region, workspace_id)
    WHERE w.region = 'us-west-2' AND w.deleted_at IS NULL
    ORDER BY w.workspace_id, w.account, w.region LIMIT 100" >"$WORK/explain.txt"
python3 bench/inventory_queries.py "$URL" "$KEY" "${REPEAT:-200}" >"$WORK/inventory.txt"
"${PSQL[@]}" -c "VACUUM ANALYZE workspaces, workspace_connections, directories"
python3 bench/inventory_queries.py "$URL" "$KEY" "${REPEAT:-200}" >"$WORK/inventory-vacuumed.txt"

python3 - "$WORK" "$ACCOUNTS" "$PER" "$REGIONS" "$WORKERS" "$CONC" "$PROFILE" <<'PY'
import json, sys
work, accounts, per, regions, workers, conc, profile = sys.argv[1:]
regions = regions.split(",")
total = int(accounts) * len(regions) * int(per)
print(f"Fleet: {accounts} accounts (AWS Organizations) x {len(regions)} regions x {per} workspaces = {total:,} workspaces; "
      f"{workers} workers x sync={conc}; default HANGAR_AWS_RATES; {profile} binaries, emulator over HTTP\n")
print("| run | jobs ok | wall s | slowest job s | median job s | AWS requests | throttled | retries | limiter wait s (sum) "
      "| DB round trips | DB reads | rows written | tags kept | worker CPU s | worker peak RSS MB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
labels = {"run1": "1: empty tables", "run2": "2: unchanged", "run3": "3: unchanged, all tags due"}
for run, label in labels.items():
    n, ok, wall, req, thr, retries, wait, rt, reads, rows, kept, slowest, median = open(f"{work}/{run}.sum").read().split()
    cpu = [dict(kv.split("=") for kv in line.split()[1:]) for line in open(f"{work}/{run}.cpu")]
    print(f"| {label} | {ok}/{n} | {wall} | {slowest} | {median} | {req} | {thr} | {retries} | {wait} | {rt} | {reads} | {rows} | {kept} | "
          f"{' + '.join(c['cpu_s'] for c in cpu)} | {' / '.join(c['peak_rss_mb'] for c in cpu)} |")
for run in labels:
    stats = json.load(open(f"{work}/{run}.stats.json"))
    print(f"\nEmulator, run {run[-1]}: calls " + ", ".join(f"{k} {v}" for k, v in sorted(stats.get('calls', {}).items()))
          + "; throttled " + (", ".join(f"{k} {v}" for k, v in sorted(stats.get('throttled', {}).items())) or "none"))
print("\nInventory listing over the synced fleet, right after run 3 (tables: name, live, dead rows, last autovacuum, last autoanalyze):\n")
print(open(f"{work}/tables.txt").read())
print(open(f"{work}/inventory.txt").read())
print("Plan of the region filter then:\n")
print(open(f"{work}/explain.txt").read())
print("After VACUUM ANALYZE:\n")
print(open(f"{work}/inventory-vacuumed.txt").read())
PY
