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
. bench/emulator.sh
post seed/workspaces "{\"directories\":3,\"workspaces\":$N,\"bundles\":4,\"tags_per_workspace\":0}" >/dev/null
SEED_START=$(date +%s.%N)
post seed/usage "{\"days\":$DAYS,\"idle_periods\":12}" >"$WORK/usage-seed.json"
SEED_SECS=$(python3 -c "import time; print(round(time.time() - $SEED_START, 1))")
serve_against_emulator

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
