# Sourced by the sync benchmarks after bench/common.sh: the AWS emulator on a
# free port (MOTO is its control URL), the API and a worker (sync=1)
# against it (WorkSpaces calls unpaced, see below), and `sync_once KIND LABEL`, which starts a "sync now" of KIND,
# waits for the job to end and keeps it in $WORK/LABEL.json with the
# emulator's call counts in $WORK/LABEL.stats.json.
MPORT=$(free_port); APORT=$(free_port)
python3 tests/moto/hangar_moto.py --port "$MPORT" >"$WORK/moto.out" 2>"$WORK/moto.log" & PIDS+=($!)
MOTO="http://127.0.0.1:$MPORT/_hangar"
for _ in $(seq 1 100); do curl -fs "$MOTO/health" >/dev/null 2>&1 && break; sleep 0.1; done
post() { curl -fsS -X POST -H 'content-type: application/json' "$MOTO/$1" -d "$2"; }

# After seeding: the API and one sync worker (release binaries in $BIN).
serve_against_emulator() {
  export HANGAR_BIND="127.0.0.1:$APORT"
  export HANGAR_LOG_LEVEL=warn HANGAR_QUEUES="sync=1" HANGAR_LEASE_SECS=30
  export HANGAR_AWS_ACCOUNTS='[{"name":"bench","regions":["us-east-1"]}]'
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MPORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
  # These benchmarks measure Hangar's own work per sync, so WorkSpaces calls
  # are not paced at AWS's 2/s (a 5,000-workspace first sync would wait 50
  # minutes for its turns); bench/fleet.sh measures syncs at the default
  # rates. BENCH_AWS_RATES="" runs with the defaults.
  export HANGAR_AWS_RATES="${BENCH_AWS_RATES-workspaces=off}"
  URL="http://127.0.0.1:$APORT"
  "$BIN/hangar-api" migrate 2>/dev/null
  AUTH="Authorization: Bearer $(api_key)"
  "$BIN/hangar-api" serve 2>"$WORK/api.log" & PIDS+=($!)
  "$BIN/hangar-worker" run 2>"$WORK/worker.log" & PIDS+=($!)
  for _ in $(seq 1 100); do curl -fs "$URL/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
}

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
