#!/usr/bin/env bash
# Benchmark `gameday load` against oha and wrk on one local nginx, in one command:
#
#   scripts/bench-load.sh                    # DUR=10 s per run, REPS=3 interleaved runs per tool
#   DUR=30 SOAK=600 scripts/bench-load.sh    # longer runs, plus a 10-minute RSS soak
#
# Installs what it needs (Debian nginx and wrk, `cargo install oha` into a cache dir), builds
# gameday in release, starts nginx on 127.0.0.1 only, and prints, for each tool: throughput
# at 64 connections (closed model), achieved rate and p99 at fixed rates of 5 000 and
# 20 000 req/s (gameday and oha; wrk has no fixed-rate mode, that is wrk2), peak RSS and
# requests per CPU-second of the generator; then the ratios gameday/peer. Not part of the
# test suite: timings belong here, not in tests. On a shared machine the absolute figures
# move with the neighbours; requests per CPU-second is the steadier one.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${GAMEDAY_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gameday-bench}
DUR=${DUR:-10}
SOAK=${SOAK:-0}
PORT=${PORT:-18080}
RATES=${RATES:-"5000 20000"}
REPS=${REPS:-3}
mkdir -p "$CACHE"

if [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null 2>&1 || [ ! -x /usr/bin/time ]; then
  echo "== installing nginx, wrk and time (Debian)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk time >/dev/null
fi
OHA="$CACHE/bin/oha"
if [ ! -x "$OHA" ]; then
  echo "== cargo install oha into $CACHE (once)" >&2
  cargo install oha --locked --root "$CACHE"
fi
echo "== building gameday (release)" >&2
(cd "$ROOT" && cargo build --release --bin gameday >&2)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GAMEDAY="$TARGET_DIR/release/gameday"

WORK=$(mktemp -d)
mkdir -p "$WORK/tmp"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
  server {
    listen 127.0.0.1:$PORT;
    location / { return 200 "hello from nginx\n"; }
  }
}
CONF
/usr/sbin/nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
trap 'kill $NGINX_PID 2>/dev/null; wait $NGINX_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done

URL="http://127.0.0.1:$PORT/"
export GAMEDAY OHA URL DUR SOAK RATES REPS
python3 - <<'PY'
import json, os, re, subprocess, tempfile, time

G, OHA, URL = os.environ["GAMEDAY"], os.environ["OHA"], os.environ["URL"]
DUR, SOAK = int(os.environ["DUR"]), int(os.environ["SOAK"])
RATES = [int(r) for r in os.environ["RATES"].split()]

def run(cmd):
    """Runs cmd; returns stdout, CPU seconds (user+sys) and peak RSS (MB) of the process.
    Measured by /usr/bin/time, not by our own wait4: a child forked from Python starts with
    Python's RSS (~14 MB), which would mask any smaller peak."""
    with tempfile.NamedTemporaryFile("r") as t:
        p = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%M %U %S"] + cmd,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out = p.stdout.decode()
        if p.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {out[-500:]}")
        rss_kb, user, sys_ = t.read().split()[-3:]
    return out, float(user) + float(sys_), int(rss_kb) / 1024.0

def gameday(rate=None):
    cmd = [G, "load", URL, "-c", "64", "-z", f"{DUR}s", "--json"]
    if rate:
        cmd += ["--rate", str(rate)]
    out, cpu, rss = run(cmd)
    j = json.loads(out)
    return dict(requests=j["requests"], rps=j["rate_achieved"], p99=j["latency_ms"]["p99"],
                errors=j["errors_total"], cpu=cpu, rss=rss, untrusted=len(j["untrusted_windows"]))

def oha(rate=None):
    cmd = [OHA, URL, "-c", "64", "-z", f"{DUR}s", "--no-tui", "--output-format", "json"]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    out, cpu, rss = run(cmd)
    j = json.loads(out)
    n = sum(j.get("statusCodeDistribution", {}).values()) + sum(j.get("errorDistribution", {}).values())
    return dict(requests=n, rps=n / DUR, p99=(j["latencyPercentiles"]["p99"] or 0) * 1000,
                errors=sum(j.get("errorDistribution", {}).values()), cpu=cpu, rss=rss)

def wrk():
    out, cpu, rss = run(["wrk", "-t2", "-c64", f"-d{DUR}s", "--latency", URL])
    n = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    e = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return dict(requests=n, rps=n / DUR, p99=p99, errors=int(e.group(1)) if e else 0, cpu=cpu, rss=rss)

REPS = int(os.environ.get("REPS", "3"))
results = {}
def show(name, tool, r, tag=""):
    print(f"{name:<16}{tool + tag:<12}{r['requests']:>10}{r['rps']:>11.0f}{r['p99']:>10.2f}{r['errors']:>8}"
          f"{r['cpu']:>8.2f}{r['requests'] / max(r['cpu'], 1e-9):>12.0f}{r['rss']:>9.1f}", flush=True)

def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]

def scenario(name, tools):
    """Runs every tool REPS times, interleaved (so a busy neighbour hits all tools alike), and
    keeps per tool the median of each figure and the largest RSS."""
    runs = {t: [] for t, _ in tools}
    for rep in range(REPS):
        for tool, f in tools:
            r = f()
            runs[tool].append(r)
            show(name, tool, r, f" #{rep + 1}")
    for tool, rs in runs.items():
        m = dict(requests=median([r["requests"] for r in rs]), rps=median([r["rps"] for r in rs]),
                 p99=median([r["p99"] for r in rs]), errors=median([r["errors"] for r in rs]),
                 cpu=median([r["cpu"] for r in rs]), rss=max(r["rss"] for r in rs),
                 per_cpu=median([r["requests"] / r["cpu"] for r in rs]),
                 untrusted=median([r.get("untrusted", 0) for r in rs]))
        results[(name, tool)] = m
        show(name, tool, m, " med")

print(f"target: nginx (1 worker) at {URL}; {DUR} s per run, {REPS} interleaved runs per tool; "
      f"{os.cpu_count()} CPUs shared with whatever else runs")
print(f"{'run':<16}{'tool':<12}{'requests':>10}{'req/s':>11}{'p99 ms':>10}{'errors':>8}{'cpu s':>8}{'req/cpu-s':>12}{'rss MB':>9}")
scenario("max@64c", [("gameday", gameday), ("oha", oha), ("wrk", wrk)])
for rate in RATES:
    scenario(f"rate {rate}", [("gameday", lambda: gameday(rate)), ("oha", lambda: oha(rate))])

def ratio(a, b):
    return a / b if b else float("nan")

g = results[("max@64c", "gameday")]
print("\nratios gameday/peer (medians)")
for peer in ["oha", "wrk"]:
    p = results[("max@64c", peer)]
    print(f"  max throughput @64c  /{peer}: {ratio(g['rps'], p['rps']):.2f}   "
          f"req per CPU-s /{peer}: {ratio(g['per_cpu'], p['per_cpu']):.2f}   "
          f"peak RSS /{peer}: {ratio(g['rss'], p['rss']):.2f}")
for rate in RATES:
    g, o = results[(f"rate {rate}", "gameday")], results[(f"rate {rate}", "oha")]
    print(f"  rate {rate}: achieved gameday {g['rps']:.0f} ({100 * g['rps'] / rate:.2f} % of requested), "
          f"oha {o['rps']:.0f} ({100 * o['rps'] / rate:.2f} %); achieved ratio {ratio(g['rps'], o['rps']):.3f}; "
          f"p99 gameday {g['p99']:.2f} ms / oha {o['p99']:.2f} ms = {ratio(g['p99'], o['p99']):.2f}; "
          f"peak RSS /oha {ratio(g['rss'], o['rss']):.2f}; gameday untrusted windows (median) {g['untrusted']}")
print("  requests per CPU-second (max@64c, median): " + ", ".join(
    f"{t} {results[('max@64c', t)]['per_cpu']:.0f}" for t in ["gameday", "oha", "wrk"]))

if SOAK:
    print(f"\nRSS soak: gameday at 5000 req/s for {SOAK} s, VmRSS every 10 s (MB)")
    p = subprocess.Popen([G, "load", URL, "-c", "64", "-z", f"{SOAK}s", "--rate", "5000", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    samples = []
    t_end = time.monotonic() + SOAK + 30
    while p.poll() is None and time.monotonic() < t_end:
        time.sleep(10)
        try:
            with open(f"/proc/{p.pid}/status") as f:
                kb = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            samples.append(kb / 1024.0)
        except (OSError, AttributeError):
            break
    out = p.communicate()[0].decode()
    print("  " + " ".join(f"{s:.1f}" for s in samples))
    if len(samples) >= 2:
        print(f"  first {samples[0]:.1f} MB, last {samples[-1]:.1f} MB, max {max(samples):.1f} MB")
    j = json.loads(out)
    print(f"  achieved {j['rate_achieved']:.1f} req/s, p99 {j['latency_ms']['p99']:.2f} ms, errors {j['errors_total']}")
PY
