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
APORT=$(free_port); MPORT=$(free_port)

python3 tests/moto/hangar_moto.py --port "$MPORT" >"$WORK/moto.out" 2>"$WORK/moto.log" & PIDS+=($!)
MOTO="http://127.0.0.1:$MPORT/_hangar"
for _ in $(seq 1 100); do curl -fs "$MOTO/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X POST -H 'content-type: application/json' "$MOTO/seed/workspaces" \
  -d "{\"directories\":3,\"workspaces\":$N,\"bundles\":4,\"tags_per_workspace\":2}" >"$WORK/seed.json"

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
  local label="$1" id state job
  curl -fsS -X POST -H 'content-type: application/json' "$MOTO/stats/reset" >/dev/null
  id=$(curl -fsS -H "$AUTH" -X POST "$URL/api/v1/syncs/workspaces" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["job"]["id"])')
  while :; do
    job=$(curl -fsS -H "$AUTH" "$URL/api/v1/jobs/$id")
    state=$(printf '%s' "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    case "$state" in succeeded|dead) break ;; esac
    sleep 0.2
  done
  printf '%s' "$job" >"$WORK/$label.json"
  curl -fsS "$MOTO/stats" >"$WORK/$label.stats.json"
}

sync_once run1
sync_once run2
python3 - "$WORK/seed.json" "$N" "$MOTO" <<'PY'
import json, sys, urllib.request
ids = json.load(open(sys.argv[1]))["workspace_ids"][: max(1, int(sys.argv[2]) // 100)]
req = urllib.request.Request(sys.argv[3] + "/workspaces/terminate", json.dumps({"workspace_ids": ids}).encode(),
                             {"content-type": "application/json"}, method="POST")
urllib.request.urlopen(req).read()
PY
sync_once run3

python3 - "$WORK" "$N" "$PROFILE" <<'PY'
import json, sys
work, n, profile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(f"WorkSpaces sync of {n:,} workspaces (3 directories, 2 tags each), {profile} binaries, emulator over HTTP\n")
print("| run | state | total s | PostgreSQL writes ms | DB round trips | pages | rows written | AWS requests | marked deleted |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
labels = {"run1": "1: empty tables", "run2": "2: unchanged", "run3": "3: 1% terminated"}
for run in ("run1", "run2", "run3"):
    job = json.load(open(f"{work}/{run}.json"))
    r = job.get("result") or {}
    s = r.get("stats", {})
    print(f"| {labels[run]} | {job['state']} | {r.get('elapsed_ms', 0)/1000:.2f} | {s.get('db_write_ms', 0):.0f} | "
          f"{s.get('db_round_trips')} | {s.get('pages')} | {s.get('rows_written')} | {s.get('aws_requests')} | {r.get('marked_deleted')} |")
stats = json.load(open(f"{work}/run1.stats.json"))
calls = stats.get("calls", {})
print("\nEmulator calls in run 1: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))
PY
