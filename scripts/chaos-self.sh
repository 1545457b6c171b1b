#!/usr/bin/env bash
# Self-chaos: gameday's promise "no fault left behind", tried the hard way. N times (default
# 100), it starts a gameday on the local sandbox, SIGKILLs the runner at a random moment of
# it (startup, any phase, a revert, the report: uniform over the planned length plus the
# startup and tail), then runs `gameday recover` from another directory with no argument
# (so the run is found through the run index, as a person would after a crash) and counts:
#   - processes left: any process carrying the run's ledger path or this script's marker
#     in its environment (the sandbox fleet, its children) after `recover`;
#   - faults left: injections in the ledger without a successful revert after `recover`;
#   - recover failures: `recover` exiting non-zero, or a second `recover` finding work;
#   - start failures: a run that could not start (e.g. a port the previous one left bound).
# It prints one line per round and a summary, and exits 1 if anything was left or failed.
#
# Usage: scripts/chaos-self.sh [N]
#   SCENARIO  the scenario (default scenarios/demo.yaml: fixed ports, so rounds are serial)
#   GAMEDAY   the binary (default: the newer of target/release/gameday and target/debug/gameday)
#   SEED      seeds the kill moments (default: the time), printed for a rerun
#   WINDOW_MS kill moments are uniform in [0, WINDOW_MS] (default: planned length + 6 s)
#   SHIFT_PORTS  add this to the scenario's fixed ports (e.g. -10000: the demo on 18080/18081)
#   KEEP=1    keep the work folder (run folders, logs) for a look afterwards
#   NO_RECOVER=1  skip `recover`, to see the script count what a crash leaves (it must fail)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

n="${1:-100}"
scenario="$repo/${SCENARIO:-scenarios/demo.yaml}"
bin="${GAMEDAY:-}"
if [ -z "$bin" ]; then
  # The newer of the two builds, so a stale release binary is never the one tried.
  bin=target/debug/gameday
  if [ -x target/release/gameday ] && [ target/release/gameday -nt "$bin" ]; then bin=target/release/gameday; fi
fi
[ -x "$bin" ] || cargo build -q --bin gameday
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export PATH="$(dirname "$bin"):$PATH" # the demo's fleet runs `gameday demo-service`
seed="${SEED:-$(date +%s)}"
RANDOM=$((seed % 32768))

work="$(mktemp -d -t gameday-chaos-self.XXXXXX)"
elsewhere="$work/elsewhere"
mkdir -p "$elsewhere"
if [ -n "${SHIFT_PORTS:-}" ]; then
  # The scenario's fixed ports moved by SHIFT_PORTS, so a demo run elsewhere on the machine
  # and these rounds never take each other's ports.
  python3 - "$scenario" "$work/scenario.yaml" "$SHIFT_PORTS" <<'PY'
import re, sys
src, dst, shift = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(src).read()
text = re.sub(r"(port: |127\.0\.0\.1:|\.local:)(\d{4,5})\b", lambda m: m.group(1) + str(int(m.group(2)) + shift), text)
open(dst, "w").write(text)
PY
  scenario="$work/scenario.yaml"
fi
cleanup() {
  # Whatever a failed round left is killed here, so the machine is clean after the script
  # (the counts above are what matters).
  for p in $(procs_marked "gd-chaos-self-$$-"); do kill -KILL "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Pids whose environment contains $1 (the ledger path or the marker).
procs_marked() {
  local needle="$1" f pid
  for f in /proc/[0-9]*/environ; do
    pid="${f#/proc/}"
    pid="${pid%/environ}"
    [ "$pid" = "$$" ] && continue
    if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qF -- "$needle"; then echo "$pid"; fi
  done
}

# Injections with no successful revert in a ledger (the same rule as `ledger::pending`).
faults_pending() {
  python3 - "$1" <<'PY'
import json, sys
open_ids = {}
try:
    lines = open(sys.argv[1]).read().splitlines()
except FileNotFoundError:
    lines = []
for line in lines:
    try:
        r = json.loads(line)
    except ValueError:
        print("torn-line")
        continue
    if r.get("op") == "inject":
        open_ids[r["id"]] = r.get("fault", "?")
    elif r.get("op") == "revert" and r.get("ok") and r["id"] in open_ids:
        del open_ids[r["id"]]
for i, f in sorted(open_ids.items()):
    print(f"{f}#{i}")
PY
}

# Planned length in ms from `gameday plan` ("... 6 phase(s), 1m12s in all ..."), plus the
# sandbox's startup and the tail (reverts, report), so every moment can be hit.
planned_ms="$("$bin" plan "$scenario" 2>/dev/null | head -n 1 | python3 -c '
import re, sys
m = re.search(r"phase\(s\), (\S+) in all", sys.stdin.read())
total = 0
for v, u in re.findall(r"(\d+)(ms|h|m|s)", m.group(1) if m else "60s"):
    total += int(v) * {"h": 3600000, "m": 60000, "s": 1000, "ms": 1}[u]
print(total)')"
window_ms="${WINDOW_MS:-$((planned_ms + 6000))}"

echo "chaos-self: $n round(s) of $(basename "$scenario") (${planned_ms} ms planned), SIGKILL uniform in [0, ${window_ms}] ms, seed $seed, $bin"
export XDG_STATE_HOME="$work/state" # the run index of these rounds only
left_procs=0 left_faults=0 recover_failures=0 start_failures=0 ended_first=0
started=$(date +%s)
for round in $(seq 1 "$n"); do
  out="$work/run-$round"
  marker="gd-chaos-self-$$-$round"
  at_ms=$(((RANDOM * 32768 + RANDOM) % (window_ms + 1)))
  env GAMEDAY_CHAOS_SELF="$marker" "$bin" run "$scenario" --out "$out" >"$work/run-$round.log" 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((at_ms / 1000)) $((at_ms % 1000)))"
  if kill -KILL "$pid" 2>/dev/null; then how="killed"; else how="ended"; ended_first=$((ended_first + 1)); fi
  set +e
  { wait "$pid"; } 2>/dev/null
  run_rc=$?
  set -e
  ledger="$(find "$out" -name ledger.jsonl 2>/dev/null | head -n 1)"
  if [ "$how" = ended ] && [ "$run_rc" -ne 0 ] && [ "$run_rc" -ne 1 ] && [ "$run_rc" -ne 2 ]; then
    # A run may end before its kill only by finishing (0 held, 1 not held, 2 stopped).
    start_failures=$((start_failures + 1))
    echo "round $round: run exited $run_rc before the kill: $(tail -n 2 "$work/run-$round.log" | tr '\n' ' ')"
  fi
  set +e
  rec_rc=0
  if [ "${NO_RECOVER:-0}" != 1 ]; then
    (cd "$elsewhere" && "$bin" recover --out "$elsewhere/none" >"$work/recover-$round.log" 2>&1)
    rec_rc=$?
  fi
  sleep 0.3 # a process that recover just signalled needs a moment to leave /proc
  procs=()
  [ -n "$ledger" ] && mapfile -t procs < <(procs_marked "$ledger")
  mapfile -t -O "${#procs[@]}" procs < <(procs_marked "$marker")
  mapfile -t procs < <(printf '%s\n' "${procs[@]}" | grep . | sort -u)
  faults=()
  [ -n "$ledger" ] && mapfile -t faults < <(faults_pending "$ledger")
  # Only then a second `recover`: it must find nothing (and would revert what the first left).
  (cd "$elsewhere" && "$bin" recover --out "$elsewhere/none" >"$work/recover-again-$round.log" 2>&1)
  again_rc=$?
  set -e
  if [ "$rec_rc" -ne 0 ] || [ "$again_rc" -ne 0 ] || ! grep -q "^nothing to recover" "$work/recover-again-$round.log"; then
    recover_failures=$((recover_failures + 1))
    echo "round $round: recover exited $rec_rc, again $again_rc: $(cat "$work/recover-$round.log" "$work/recover-again-$round.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
  fi
  left_procs=$((left_procs + ${#procs[@]}))
  left_faults=$((left_faults + ${#faults[@]}))
  injected=0
  [ -n "$ledger" ] && injected=$(grep -c '"op":"inject"' "$ledger" || true)
  printf 'round %3d: %s at %6d ms (run exit %3d), %2d ledger record(s) of injection, recover exit %d, left: %d process(es) %d fault(s)%s\n' \
    "$round" "$how" "$at_ms" "$run_rc" "$injected" "$rec_rc" "${#procs[@]}" "${#faults[@]}" \
    "$( [ ${#procs[@]} -gt 0 ] || [ ${#faults[@]} -gt 0 ] && echo " <- ${procs[*]} ${faults[*]}")"
  for p in "${procs[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
done
secs=$(($(date +%s) - started))
echo
echo "chaos-self summary: $n round(s) in ${secs} s, seed $seed"
echo "  runner killed mid-run:      $((n - ended_first))   (ended before its kill: $ended_first)"
echo "  processes left after recover: $left_procs"
echo "  faults left after recover:    $left_faults"
echo "  recover failures:             $recover_failures"
echo "  runs that could not start:    $start_failures"
if [ $((left_procs + left_faults + recover_failures + start_failures)) -gt 0 ]; then
  echo "chaos-self: FAILED (goal: 0 left, 0 failures)"
  exit 1
fi
echo "chaos-self: ok, nothing left behind"
