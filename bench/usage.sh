#!/usr/bin/env bash
# Usage sync benchmark: the real hangar-api and hangar-worker binaries, the
# official AWS SDK (CloudWatch over Smithy RPC v2 CBOR) to the emulator,
# seeded with N workspaces and DAYS days of UserConnected points (office
# hours, 12 idle periods after each session). The workspaces are synced
# first; then sync.usage twice:
#   run 1 (empty table): every connected hour written;
#   run 2 (nothing new): the overlap re-read, nothing written.
# Figures from each job's result: total time, GetMetricData calls (500
# workspaces each, paged by 100,800 datapoints), datapoints, hours written,
# DB round trips (they must grow with pages, not rows), and the emulator's
# own time per call (Python decoding CBOR and indexing moto's points).
#
#   bash bench/usage.sh [N=5000] [DAYS=7]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
DAYS="${2:-7}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
cargo build --release --locked --bins -q
BIN="$CARGO_TARGET_DIR/release"
. bench/common.sh
APORT=$(free_port); MPORT=$(free_port)

python3 tests/moto/hangar_moto.py --port "$MPORT" >"$WORK/moto.out" 2>"$WORK/moto.log" & PIDS+=($!)
MOTO="http://127.0.0.1:$MPORT/_hangar"
for _ in $(seq 1 100); do curl -fs "$MOTO/health" >/dev/null 2>&1 && break; sleep 0.1; done
post() { curl -fsS -X POST -H 'content-type: application/json' "$MOTO/$1" -d "$2"; }
post seed/workspaces "{\"directories\":3,\"workspaces\":$N,\"bundles\":4,\"tags_per_workspace\":0}" >/dev/null
SEED_START=$(date +%s.%N)
post seed/usage "{\"days\":$DAYS,\"idle_periods\":12}" >"$WORK/usage-seed.json"
SEED_SECS=$(python3 -c "import time; print(round(time.time() - $SEED_START, 1))")

export HANGAR_BIND="127.0.0.1:$APORT"
export HANGAR_LOG_LEVEL=warn HANGAR_QUEUES="sync=1" HANGAR_LEASE_SECS=30
export HANGAR_AWS_ACCOUNTS='[{"name":"bench","regions":["us-east-1"]}]'
export AWS_ENDPOINT_URL="http://127.0.0.1:$MPORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
URL="http://127.0.0.1:$APORT"
"$BIN/hangar-api" migrate 2>/dev/null
TOKEN=$(api_key)
AUTH="Authorization: Bearer $TOKEN"
"$BIN/hangar-api" serve 2>"$WORK/api.log" & PIDS+=($!)
"$BIN/hangar-worker" run 2>"$WORK/worker.log" & PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "$URL/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done

sync_once() {
  local kind="$1" label="$2" id state job
  post stats/reset '{}' >/dev/null
  id=$(curl -fsS -H "$AUTH" -X POST "$URL/api/v1/syncs/$kind" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["job"]["id"])')
  while :; do
    job=$(curl -fsS -H "$AUTH" "$URL/api/v1/jobs/$id")
    state=$(printf '%s' "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    case "$state" in succeeded|dead) break ;; esac
    sleep 0.2
  done
  printf '%s' "$job" >"$WORK/$label.json"
  curl -fsS "$MOTO/stats" >"$WORK/$label.stats.json"
}

sync_once workspaces inventory
sync_once usage run1
sync_once usage run2

python3 - "$WORK" "$N" "$DAYS" "$SEED_SECS" <<'PY'
import datetime, json, sys
work, n, days, seed_secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
seed = json.load(open(f"{work}/usage-seed.json"))
print(f"sync.usage of {n:,} workspaces, {days} days of UserConnected ({seed['points']:,} points put in {seed_secs} s), "
      "release binaries, emulator over HTTP\n")
print("| run | state | total s | GetMetricData calls | datapoints | hours written | DB round trips | PostgreSQL writes ms | rate-limit wait ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for run, label in (("run1", "1: empty table"), ("run2", "2: nothing new")):
    job = json.load(open(f"{work}/{run}.json"))
    r, s = job.get("result") or {}, (job.get("result") or {}).get("stats", {})
    t0 = datetime.datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
    t1 = datetime.datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
    print(f"| {label} | {job['state']} | {(t1 - t0).total_seconds():.2f} | {s.get('aws_requests')} | "
          f"{r.get('datapoints', 0):,} | {r.get('hours_written', 0):,} | {s.get('db_round_trips')} | "
          f"{s.get('db_write_ms', 0):.0f} | {s.get('rate_limit_wait_ms', 0):.0f} |")
    print(f"RESULT run={run} seconds={(t1 - t0).total_seconds():.2f} calls={s.get('aws_requests')} "
          f"datapoints={r.get('datapoints')} hours_written={r.get('hours_written')} db_round_trips={s.get('db_round_trips')}")
PY
