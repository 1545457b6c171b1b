#!/usr/bin/env bash
# A short fuzz run of the scenario reader, for CI: `scripts/fuzz.sh [SECONDS]` (default 60).
#
# With a nightly toolchain, runs the real `cargo fuzz` target (fuzz/fuzz_targets/scenario.rs,
# libFuzzer + AddressSanitizer), installing cargo-fuzz from crates.io if needed. Without
# nightly, runs the stable stand-in: the seeded mutation test of tests/hostile.rs with a
# larger count. It prints which one ran. A crash fails the script; libFuzzer leaves the input
# in fuzz/artifacts/scenario/, the stand-in in target/fuzz-crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"

log() { printf '== %s\n' "$*" >&2; }

if rustup run nightly rustc --version >/dev/null 2>&1; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (crates.io)"
    cargo install --locked cargo-fuzz
  fi
  log "cargo +nightly fuzz run scenario for ${secs}s (libFuzzer)"
  mkdir -p fuzz/corpus/scenario
  exec cargo +nightly fuzz run scenario fuzz/corpus/scenario fuzz/seeds/scenario -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536
fi

iters=$((secs * 500))
log "no nightly toolchain: stable stand-in, ${iters} seeded mutations (tests/hostile.rs)"
GAMEDAY_FUZZ_ITERS="$iters" GAMEDAY_FUZZ_SEED="${GAMEDAY_FUZZ_SEED:-$(date +%s)}" \
  exec cargo test --test main hostile::mutated_scenarios_never_panic_the_reader -- --nocapture
