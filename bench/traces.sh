#!/usr/bin/env bash
# The API's request path with tracing off, with a live collector and with a
# dead one: bench/api.sh three times per round, ROUNDS rounds, interleaved.
#   off   OTEL_EXPORTER_OTLP_ENDPOINT unset
#   live  bench/otlp_sink.py on a free port (answers 200 to every export)
#   dead  a free port nothing listens on (every export is refused)
# Prints each run's RESULT lines prefixed with its mode.
#
#   bash bench/traces.sh [ROUNDS=2] [DURATION=10] [CONNS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"
DURATION="${2:-10}"
CONNS="${3:-32}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
SINK_PID=
trap '[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
SINK_PORT=$(free_port)
DEAD_PORT=$(free_port)
python3 bench/otlp_sink.py "$SINK_PORT" >"$WORK/sink.out" &
SINK_PID=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null && break; sleep 0.1; done
for round in $(seq 1 "$ROUNDS"); do
  for mode in off live dead; do
    case $mode in
      off) endpoint="" ;;
      live) endpoint="http://127.0.0.1:$SINK_PORT" ;;
      dead) endpoint="http://127.0.0.1:$DEAD_PORT" ;;
    esac
    # Every mode logs at info (the default), so the request spans exist in
    # all three and the only difference is the exporter (at bench/api.sh's
    # warn, the "off" mode would skip creating spans the others create).
    OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" BENCH_LOG_LEVEL=info \
      bash bench/api.sh "$DURATION" "$CONNS" 2>/dev/null | sed "s/^RESULT /RESULT mode=$mode round=$round /"
  done
done
kill -TERM "$SINK_PID" 2>/dev/null; wait "$SINK_PID" 2>/dev/null || true
SINK_PID=
cat "$WORK/sink.out"
