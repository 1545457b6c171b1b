#!/usr/bin/env bash
# Benchmark gameday's L4 proxy (no fault active) against a direct loopback connection, and
# against toxiproxy when `toxiproxy-server` is on the PATH (it is not packaged in Debian, nor
# on crates.io: install it by hand to compare).
# Usage: scripts/bench-proxy.sh [ROUND_TRIPS]   (default 20000; loopback only, bounded)
# Needs a release build: the figures of an unoptimised build say nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
cargo build --release --example bench_proxy
bench=./target/release/examples/bench_proxy
if command -v toxiproxy-server >/dev/null; then
  echo_port=27301 tox_api=27302 tox_listen=27303
  toxiproxy-server -host 127.0.0.1 -port "$tox_api" >/dev/null 2>&1 &
  tox_pid=$!
  trap 'kill "$tox_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$tox_api/version" >/dev/null && break
    sleep 0.1
  done
  curl -sf -X POST "http://127.0.0.1:$tox_api/proxies" \
    -d "{\"name\":\"bench\",\"listen\":\"127.0.0.1:$tox_listen\",\"upstream\":\"127.0.0.1:$echo_port\"}" >/dev/null
  "$bench" "$n" --echo-port "$echo_port" --also "toxiproxy=127.0.0.1:$tox_listen"
else
  "$bench" "$n"
  echo "# toxiproxy-server not installed here: no comparison"
fi
