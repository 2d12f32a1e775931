#!/usr/bin/env bash
# WorkSpaces sync benchmark: the real hangar-api and hangar-worker binaries,
# the official AWS SDK over HTTP to the emulator (moto + tests/moto/
# hangar_moto.py) seeded with N workspaces in 3 directories (2 tags each).
# Runs the sync three times and reports, from each job's own result:
#   run 1 (empty tables): every row inserted;
#   run 2 (nothing changed in AWS): every row compared, none written;
#   run 3 (after 1% of workspaces terminated): those marked deleted.
# Figures: total time, time in PostgreSQL writes, DB round trips (statements),
# pages, AWS requests. Round trips must grow with pages (25 workspaces each),
# not with rows. Also the emulator's own time per call, to show where the
# time goes.
#
#   bash bench/sync.sh [N=5000] [PROFILE=release]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
PROFILE="${2:-release}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
if [ "$PROFILE" = release ]; then cargo build --release --locked --bins -q; else cargo build --locked --bins -q; fi
BIN="$CARGO_TARGET_DIR/$PROFILE"
[ "$PROFILE" = release ] || BIN="$CARGO_TARGET_DIR/debug"
. bench/common.sh
. bench/emulator.sh
post seed/workspaces "{\"directories\":3,\"workspaces\":$N,\"bundles\":4,\"tags_per_workspace\":2}" >"$WORK/seed.json"
serve_against_emulator

sync_once workspaces run1
sync_once workspaces run2
python3 - "$WORK/seed.json" "$N" "$MOTO" <<'PY'
import json, sys, urllib.request
ids = json.load(open(sys.argv[1]))["workspace_ids"][: max(1, int(sys.argv[2]) // 100)]
req = urllib.request.Request(sys.argv[3] + "/workspaces/terminate", json.dumps({"workspace_ids": ids}).encode(),
                             {"content-type": "application/json"}, method="POST")
urllib.request.urlopen(req).read()
PY
sync_once workspaces run3

python3 - "$WORK" "$N" "$PROFILE" <<'PY'
import json, sys
work, n, profile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(f"WorkSpaces sync of {n:,} workspaces (3 directories, 2 tags each), {profile} binaries, emulator over HTTP\n")
print("| run | state | total s | PostgreSQL writes ms | DB round trips | pages | rows written | AWS requests | marked deleted | limiter wait ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
labels = {"run1": "1: empty tables", "run2": "2: unchanged", "run3": "3: 1% terminated"}
for run in ("run1", "run2", "run3"):
    job = json.load(open(f"{work}/{run}.json"))
    r = job.get("result") or {}
    s = r.get("stats", {})
    print(f"| {labels[run]} | {job['state']} | {r.get('elapsed_ms', 0)/1000:.2f} | {s.get('db_write_ms', 0):.0f} | "
          f"{s.get('db_round_trips')} | {s.get('pages')} | {s.get('rows_written')} | {s.get('aws_requests')} | {r.get('marked_deleted')} | "
          f"{s.get('rate_limit_wait_ms', 0):.0f} |")
stats = json.load(open(f"{work}/run1.stats.json"))
calls = stats.get("calls", {})
print("\nEmulator calls in run 1: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))
PY
