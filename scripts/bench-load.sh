#!/usr/bin/env bash
# Benchmark `gameday load` against oha and wrk on one local nginx, in one command:
#
#   scripts/bench-load.sh            # DUR=10 s per run
#   DUR=30 SOAK=600 scripts/bench-load.sh   # longer runs, plus a 10-minute RSS soak
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
mkdir -p "$CACHE"

if [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null 2>&1; then
  echo "== installing nginx and wrk (Debian)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
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
export GAMEDAY OHA URL DUR SOAK RATES
python3 - <<'PY'
import json, os, re, subprocess, time

G, OHA, URL = os.environ["GAMEDAY"], os.environ["OHA"], os.environ["URL"]
DUR, SOAK = int(os.environ["DUR"]), int(os.environ["SOAK"])
RATES = [int(r) for r in os.environ["RATES"].split()]

def run(cmd):
    """Runs cmd; returns stdout, CPU seconds (user+sys) and peak RSS (MB) of the process."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {out[-500:]}")
    return out, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0

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

results = {}
def show(name, tool, r):
    results[(name, tool)] = r
    print(f"{name:<16}{tool:<9}{r['requests']:>10}{r['rps']:>11.0f}{r['p99']:>10.2f}{r['errors']:>8}"
          f"{r['cpu']:>8.2f}{r['requests'] / max(r['cpu'], 1e-9):>12.0f}{r['rss']:>9.1f}", flush=True)

print(f"target: nginx (1 worker) at {URL}; {DUR} s per run; {os.cpu_count()} CPUs shared with whatever else runs")
print(f"{'run':<16}{'tool':<9}{'requests':>10}{'req/s':>11}{'p99 ms':>10}{'errors':>8}{'cpu s':>8}{'req/cpu-s':>12}{'rss MB':>9}")
for tool, f in [("gameday", gameday), ("oha", oha), ("wrk", wrk)]:
    show("max@64c", tool, f())
for rate in RATES:
    for tool, f in [("gameday", gameday), ("oha", oha)]:
        show(f"rate {rate}", tool, f(rate))

def ratio(a, b):
    return a / b if b else float("nan")

g = results[("max@64c", "gameday")]
print("\nratios gameday/peer")
for peer in ["oha", "wrk"]:
    p = results[("max@64c", peer)]
    print(f"  max throughput @64c  /{peer}: {ratio(g['rps'], p['rps']):.2f}   "
          f"req per CPU-s /{peer}: {ratio(g['requests'] / g['cpu'], p['requests'] / p['cpu']):.2f}   "
          f"peak RSS /{peer}: {ratio(g['rss'], p['rss']):.2f}")
for rate in RATES:
    g, o = results[(f"rate {rate}", "gameday")], results[(f"rate {rate}", "oha")]
    print(f"  rate {rate}: achieved gameday {g['rps']:.0f} ({100 * g['rps'] / rate:.2f} % of requested), "
          f"oha {o['rps']:.0f} ({100 * o['rps'] / rate:.2f} %); achieved ratio {ratio(g['rps'], o['rps']):.3f}; "
          f"p99 gameday {g['p99']:.2f} ms / oha {o['p99']:.2f} ms = {ratio(g['p99'], o['p99']):.2f}; "
          f"gameday untrusted windows {g['untrusted']}")
print("  requests per CPU-second (max@64c): " + ", ".join(
    f"{t} {results[('max@64c', t)]['requests'] / results[('max@64c', t)]['cpu']:.0f}" for t in ["gameday", "oha", "wrk"]))

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
