# Sourced by the benchmarks that run Hangar's release binaries: ensures the
# local services and sets BIN to the binaries to measure, BENCH_BIN_DIR's
# (another commit's, copied aside, so two builds can be measured in
# interleaved runs) or this checkout's, built now.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hangar/target}"
bash scripts/services.sh ensure >&2
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  BIN="$BENCH_BIN_DIR"
else
  cargo build --release --locked --bins -q
  BIN="$CARGO_TARGET_DIR/release"
fi
