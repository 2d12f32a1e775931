#!/usr/bin/env bash
# Instructions the API executes per `POST /api/v1/jobs`, counted by
# valgrind's callgrind: repeatable on a VM whose throughput figures swing by
# 20 % from one minute to the next (see bench/RESULTS.md), so a small
# change on the request path can be seen and attributed. The API runs under
# callgrind (HANGAR_LOG_LEVEL=warn, an admin API key, rate limit on, as in
# bench/api.sh); WARMUP requests fill its caches, the counters are zeroed,
# then COUNT requests (8 keep-alive connections) are counted. Prints
# instructions per request and the functions that cost the most, inclusive.
#
#   BENCH_BIN_DIR=DIR bash bench/api-instructions.sh [COUNT=2000] [WARMUP=300]
# (without BENCH_BIN_DIR it builds this checkout's release binaries; extra
# variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT, reach the API;
# BENCH_CG_OUT=FILE keeps the callgrind dump)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-2000}"
WARMUP="${2:-300}"
command -v valgrind >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
. bench/bins.sh
. bench/common.sh
APORT=$(free_port)
export HANGAR_BIND="127.0.0.1:$APORT" HANGAR_LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}" HANGAR_DB_MAX_CONNECTIONS=16
URL="http://127.0.0.1:$APORT"
"$BIN/hangar-api" migrate 2>/dev/null
TOKEN=$(api_key)
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" --dump-instr=no \
  "$BIN/hangar-api" serve 2>"$WORK/api.log" & PIDS+=($!)
CG_PID=${PIDS[-1]}
for _ in $(seq 1 600); do curl -fs "$URL/health/live" >/dev/null 2>&1 && break; sleep 0.2; done

# COUNT POSTs over 8 keep-alive connections; fails on any non-202.
post() {
  python3 - "$APORT" "$TOKEN" "$1" <<'PY'
import http.client, json, sys, threading
port, token, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.dumps({"kind": "system.noop"})
headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
failures = []
def run(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        c.request("POST", "/api/v1/jobs", body, headers)
        r = c.getresponse()
        r.read()
        if r.status != 202:
            failures.append(r.status)
threads = [threading.Thread(target=run, args=(count // 8 + (i < count % 8),)) for i in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
if failures:
    sys.exit(f"{len(failures)} requests failed: {failures[:5]}")
PY
}
post "$WARMUP"
callgrind_control -z "$CG_PID" >/dev/null
post "$COUNT"
callgrind_control -d "$CG_PID" >/dev/null
sleep 1
DUMP=$(ls -t "$WORK"/cg.out.* | head -1)
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
# BENCH_CG_OUT=FILE keeps the callgrind dump (for callgrind_annotate).
if [ -n "${BENCH_CG_OUT:-}" ]; then cp "$DUMP" "$BENCH_CG_OUT"; fi
echo "RESULT instructions_per_request=$((TOTAL / COUNT)) requests=$COUNT total=$TOTAL"
callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -40 | cut -c1-220
