#!/usr/bin/env bash
# The one command that runs every test of gameday on a fresh Debian machine (and in CI).
# It installs what the tests need first, so a clean clone needs nothing else:
#   - Debian packages: chromium (the HTML report checked in a real browser), prometheus (scrapes
#     a real run), python3;
#   - moto's EC2 server from PyPI (the AWS target's emulator);
#   - a real Kubernetes API server on loopback (../shared/k8s-local, built once and cached in
#     ~/.cache/k8s-local-1.20.2), for the Kubernetes end-to-end suite;
# then runs `cargo test` on everything, `scripts/chaos-self.sh 10` (SIGKILL the runner at random
# moments, recover, count what is left) and `scripts/audit.sh` (cargo deny), and stops the cluster.
# The longer fuzz run is `scripts/fuzz.sh [SECONDS]` (cargo fuzz with nightly, else the stable
# stand-in); `cargo test` already runs the stand-in's default 3 000 seeded mutations.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_need=()
command -v chromium >/dev/null 2>&1 || apt_need+=(chromium)
command -v prometheus >/dev/null 2>&1 || apt_need+=(prometheus)
command -v python3 >/dev/null 2>&1 || apt_need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || apt_need+=(python3-pip)
if [ ${#apt_need[@]} -gt 0 ]; then
  log "installing Debian packages: ${apt_need[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt_need[@]}"
fi

if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  log "installing moto's EC2 server (PyPI)"
  python3 -m pip install -q "moto[server]" || python3 -m pip install -q --break-system-packages "moto[server]"
fi

K8S_LOCAL=../shared/k8s-local/k8s-local
want_k8s=0
if [ -z "${GAMEDAY_E2E_KUBECONFIG:-}" ] && [ -x "$K8S_LOCAL" ] && [ "${GAMEDAY_SKIP_K8S:-0}" != 1 ]; then
  want_k8s=1
fi

# On a fresh machine both k8s-local (Go, ~10 min) and the tests (Rust, ~12 min) must be built.
# aws-sdk-ec2 is one long single-threaded rustc job, so the Go build overlaps it in the
# background instead of waiting its turn. `k8s-local build` does nothing when cached.
k8s_build_pid=
k8s_build_log=$(mktemp -t k8s-local-build.XXXXXX)
if [ "$want_k8s" = 1 ]; then
  log "building k8s-local in the background if not cached (log: $k8s_build_log)"
  "$K8S_LOCAL" build >"$k8s_build_log" 2>&1 &
  k8s_build_pid=$!
fi

log "cargo build of every test target"
cargo test --all-targets --locked --no-run

if [ "$want_k8s" = 1 ]; then
  if ! wait "$k8s_build_pid"; then
    tail -n 40 "$k8s_build_log" >&2
    echo "k8s-local build failed (log: $k8s_build_log)" >&2
    exit 1
  fi
  log "starting k8s-local"
  trap '"$K8S_LOCAL" down >/dev/null 2>&1 || true' EXIT
  eval "$("$K8S_LOCAL" up | tail -n 1)"
  export GAMEDAY_E2E_KUBECONFIG="$KUBECONFIG"
fi

log "cargo test (unit tests, the integration binary tests/main.rs, the fuzz stand-in's default run)"
cargo test --all-targets --locked -- --test-threads="${GAMEDAY_TEST_THREADS:-2}"

log "self-chaos: SIGKILL the runner at random moments of the demo, recover, count what is left (${GAMEDAY_CHAOS_SELF_ROUNDS:-10} rounds)"
GAMEDAY=target/debug/gameday bash scripts/chaos-self.sh "${GAMEDAY_CHAOS_SELF_ROUNDS:-10}"

log "supply chain: cargo deny (licences, bans, sources; advisories when the database is reachable)"
bash scripts/audit.sh
