#!/usr/bin/env bash
# Measures what the hostile inputs of tests/hostile.rs cost the reader: wall time and peak
# memory of `gameday validate` on each (tests assert the errors, never timings; this script
# is where the bounds are measured). Needs python3 and /usr/bin/time (Debian: `time`).
# Usage: scripts/hostile-bench.sh [path/to/gameday]   (default: target/debug/gameday)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/gameday}"
[ -x "$bin" ] || cargo build -q
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" <<'PY'
import sys, os
d = sys.argv[1]
base = open("tests/fixtures/valid-local.yaml").read()
head = base.split("phases:\n")[0]
def w(name, s):
    open(os.path.join(d, name + ".yaml"), "w").write(s)
anch = "a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 9) + "]\n" for i in range(1, 10))
w("alias-bomb", base + anch)
w("100k-phases", head + "phases:\n" + "".join(f"  - name: p{i}\n    duration: 1s\n" for i in range(100000)))
w("13k-overlapping-faults", head + "phases:\n  - name: chaos\n    duration: 1000s\n    faults:\n" +
  "".join(f"      - {{at: {i % 100}s, process_kill: {{ service: web }}}}\n" for i in range(13000)))
w("200k-unknown-keys", base + "".join(f"unknown{i}: 1\n" for i in range(200000)))
w("deep-nesting", base + "x: " + "[" * 100000 + "]" * 100000 + "\n")
w("3mb-line", base + "k" * 3000000 + ": 1\n")
w("1mb-integer", base.replace("count: 1", "count: " + "9" * 1000000))
w("huge-duration", base.replace("duration: 4s", "duration: 5000000000000000h"))
with open(os.path.join(d, "50mb.yaml"), "wb") as f:
    f.truncate(50 * 1024 * 1024)
PY

printf '%-26s %6s %9s %10s %s\n' input exit seconds peak_KiB first_error
for f in "$dir"/*.yaml; do
  name="$(basename "$f" .yaml)"
  set +e
  /usr/bin/time -f '%e %M' -o "$dir/t" "$bin" validate "$f" >"$dir/out" 2>&1
  code=$?
  set -e
  read -r secs kib < <(tail -n 1 "$dir/t")
  first="$(grep -m1 -o 'error: .*' "$dir/out" | cut -c1-90 | sed "s|$dir/||")"
  printf '%-26s %6s %9s %10s %s\n' "$name" "$code" "$secs" "$kib" "$first"
done
