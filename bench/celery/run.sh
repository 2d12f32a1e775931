#!/usr/bin/env bash
# Celery 5 (Redis broker) comparison for Hangar's throughput benchmark.
#
#   bash bench/celery/run.sh REDIS_URL [JOBS]
#
# Use a Redis nobody else uses (commands are counted server-wide). Creates or
# reuses a venv at ${HANGAR_BENCH_VENV:-$HOME/.cache/hangar/bench-venv},
# installs requirements.txt there if it is not installed yet, then runs
# bench_celery.py twice: prefork pool x 2 processes (the machine has 2 cores)
# and threads pool x 50. Each prints a RESULT line (plus BREAKDOWN, DETAIL and
# BULK lines). BENCH_TIMEOUT (seconds, default 300) limits each phase; the
# whole of one run is limited to 4 x BENCH_TIMEOUT + 60.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: bash bench/celery/run.sh REDIS_URL [JOBS]" >&2
    exit 2
fi
redis_url=$1
jobs=${2:-20000}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${HANGAR_BENCH_VENV:-$HOME/.cache/hangar/bench-venv}
req=$here/requirements.txt
phase_timeout=${BENCH_TIMEOUT:-300}

if [[ ! -x $venv/bin/python ]]; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi
# Install only when requirements.txt changed since the last install into this
# venv (or the packages are missing).
stamp=$venv/.hangar-celery-requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]] \
    || ! "$venv/bin/python" -c 'import celery, kombu, redis' 2>/dev/null; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
fi

run() {
    # `timeout` sends SIGTERM, which bench_celery.py turns into a clean exit
    # that still stops its worker; SIGKILL 30 s later if that hangs.
    timeout --kill-after=30 "$((4 * phase_timeout + 60))" \
        "$venv/bin/python" "$here/bench_celery.py" --redis-url "$redis_url" \
        --jobs "$jobs" --timeout "$phase_timeout" "$@"
}

status=0
run --pool prefork --concurrency 2 || { echo "run.sh: prefork run failed (exit $?)" >&2; status=1; }
run --pool threads --concurrency 50 || { echo "run.sh: threads run failed (exit $?)" >&2; status=1; }
exit $status
