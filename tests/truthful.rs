//! Measurement that stays true under the worst faults: a blackhole, a frozen process, an
//! overload and connections closed after every answer. Each test uses a fault that made an
//! earlier, naive implementation lie (outcomes counted in the second they completed, drops
//! counted only when a connection freed up, a silent second resetting a stop condition's
//! streak, keep-alive resends counted as ordinary requests).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gameday::load::{self, LoadSpec, LoadSummary, Window};
use gameday::report::{read_journal, EventKind, Journal};
use tokio_util::sync::CancellationToken;

use crate::support::http::{RawServer, TestServer};
use crate::support::{bin, cmd, free_port, text};

/// Runs `gameday run` on a scenario written into `dir` and returns its exit code, output and
/// journal.
fn run(dir: &Path, yaml: &str) -> (Option<i32>, String, Journal, std::path::PathBuf) {
    let s = dir.join("scenario.yaml");
    std::fs::write(&s, yaml).unwrap();
    let out = dir.join("reports");
    let o = cmd()
        .arg("run")
        .arg(&s)
        .arg("--out")
        .arg(&out)
        .arg("--no-progress")
        .output()
        .unwrap();
    let run = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .expect("a run folder")
        .unwrap()
        .path();
    let j = read_journal(&run.join("journal.json")).unwrap();
    (o.status.code(), text(&o), j, run)
}

/// Share of a set of windows' attempted requests (sent or dropped) that succeeded.
fn availability<'a>(ws: impl Iterator<Item = &'a gameday::report::WindowRecord>) -> (u64, u64) {
    ws.fold((0, 0), |(ok, all), w| {
        (ok + w.ok, all + w.requests + w.dropped)
    })
}

/// The blackhole of the issue that found the defect: the only service's link swallows every
/// byte for 15 s. Every blackholed second must read as an outage, the stop condition must fire
/// within its documented bound (N + the load's timeout + 1 s after the fault starts), the run
/// must exit 3, and the fault must be reverted.
#[test]
fn blackhole_is_an_outage_and_trips_the_stop_condition() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let yaml = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: blackhole
target:
  local:
    services:
      - name: backend
        command: ["{bin}", demo-service, backend]
        replicas: 2
        port: {port}
        health: /readyz
load:
  url: http://127.0.0.1:{port}/
  rate: 20
  connections: 4
  timeout: 2s
stop_conditions:
  - name: mostly failing
    availability: {{ min_percent: 50 }}
    for: 3s
phases:
  - name: baseline
    duration: 3s
  - name: chaos
    duration: 20s
    faults:
      - name: swallow
        at: 1s
        duration: 15s
        network: {{ service: backend, blackhole: true }}
  - name: recovery
    duration: 2s
"#,
        bin = bin().display()
    );
    let (code, out, j, run) = run(dir.path(), &yaml);
    assert_eq!(code, Some(3), "the stop condition ends the run: {out}");
    let fault = &j.faults[0];
    assert!(fault.reverted, "{fault:?}");
    let stop = j
        .events
        .iter()
        .find(|e| e.kind == EventKind::StopCondition)
        .unwrap_or_else(|| panic!("no stop event: {:#?}", j.events));
    // The documented detection bound: `for` (3 s) + timeout (2 s) + 1 s, plus a second for the
    // monitor's tick on a loaded machine.
    let delay = stop.t_s - fault.start_s;
    assert!(
        delay > 0.0 && delay <= 3.0 + 2.0 + 1.0 + 1.0,
        "stop {delay} s after the fault"
    );
    // Whole seconds inside the blackhole, up to the stop: an outage at their intended second.
    let inside = j
        .windows
        .iter()
        .filter(|w| w.t_s >= fault.start_s + 0.5 && w.end_s() <= stop.t_s);
    let (ok, all) = availability(inside);
    assert!(all >= 40, "the blackholed seconds had their load: {all}");
    assert!(ok * 10 <= all, "availability {ok}/{all} under a blackhole");
    // Before the fault the service answered.
    let before = j.windows.iter().filter(|w| w.end_s() <= fault.start_s);
    let (ok, all) = availability(before);
    assert!(all > 0 && ok * 10 >= all * 9, "baseline {ok}/{all}");
    // The chaos phase in the report reads as the outage it was.
    let chaos = j.phases.iter().find(|p| p.name == "chaos").unwrap();
    let attempted = chaos.stats.requests + chaos.stats.dropped;
    assert!(chaos.stats.ok * 2 < attempted, "{:?}", chaos.stats);
    // Nothing is left to recover.
    let o = cmd()
        .args(["recover", "--out"])
        .arg(run.parent().unwrap())
        .output()
        .unwrap();
    assert!(text(&o).contains("nothing to recover"), "{}", text(&o));
}

fn spec(url: String, rate: f64, connections: usize, timeout: &str) -> LoadSpec {
    let mut s = LoadSpec::for_url(url);
    s.rate = Some(rate);
    s.connections = connections;
    s.timeout = timeout.parse().expect("a test duration");
    s
}

/// Runs `spec` for `secs`, calling `during` (on a blocking thread) once the load started.
async fn run_load(
    spec: &LoadSpec,
    secs: u64,
    during: impl FnOnce() + Send + 'static,
) -> (load::LoadSummary, Vec<Window>) {
    let (handle, mut rx) = load::start(spec, CancellationToken::new()).unwrap();
    handle.stop_at(Duration::from_secs(secs));
    let side = tokio::task::spawn_blocking(during);
    tokio::time::sleep_until((handle.started_at() + Duration::from_secs(secs)).into()).await;
    let s = handle.finish_at(Duration::from_secs(secs)).await;
    side.await.unwrap();
    let mut windows = Vec::new();
    while let Some(w) = rx.recv().await {
        windows.push(w);
    }
    (s, windows)
}

/// A real HTTP server process (Python's), so that SIGSTOP freezes it the way a stuck JVM or a
/// paused VM freezes: the kernel still accepts connections, nothing answers.
struct Python(Child);

impl Python {
    fn start(port: u16) -> Python {
        let dir = tempfile::tempdir().unwrap().keep();
        let mut child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(&dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Python(child);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("python3 -m http.server did not listen on {port}");
    }

    fn signal(pid: u32, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        Python::signal(self.0.id(), "CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A backend frozen with SIGSTOP from t=3 s to t=7 s at a fixed 20 req/s, 2 s timeout: the
/// requests meant for the frozen seconds fail (or are slow) in *those* seconds. A generator
/// that counts outcomes where they complete would put them in the seconds after and show the
/// frozen seconds empty or good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_backend_fails_at_its_intended_seconds() {
    let port = free_port();
    let py = Python::start(port);
    let pid = py.0.id();
    let sp = spec(format!("http://127.0.0.1:{port}/"), 20.0, 2, "2s");
    let t0 = std::time::Instant::now();
    let (s, w) = run_load(&sp, 11, move || {
        std::thread::sleep(Duration::from_secs(3).saturating_sub(t0.elapsed()));
        Python::signal(pid, "STOP");
        std::thread::sleep(Duration::from_secs(4));
        Python::signal(pid, "CONT");
    })
    .await;
    let line: Vec<_> = w
        .iter()
        .map(|w| (w.index, w.ok, w.requests, w.dropped, w.latency.p50))
        .collect();
    assert_eq!(w.len(), 11, "{line:?}");
    for w in &w {
        assert_eq!(w.attempted(), 20, "every second carries its load: {line:?}");
    }
    // Intended at 3 s and 4 s: their 2 s deadline passes before the thaw at 7 s.
    for i in [3, 4] {
        assert!(w[i].ok <= 2, "second {i} was frozen: {line:?}");
    }
    // Intended at 5 s and 6 s: answered at the thaw at best, so slow (p50 ≥ 500 ms) or failed.
    for i in [5, 6] {
        let slow = w[i].ok == 0 || w[i].latency.p50 >= 500.0;
        assert!(slow, "second {i} was frozen: {line:?}");
    }
    // Before the freeze, and from a second after the thaw, the backend answered promptly: no
    // outcome of a frozen second leaked into them.
    for i in [1, 2, 8, 9, 10] {
        assert!(
            w[i].ok >= 19 && w[i].latency.p99 < 500.0,
            "second {i}: {line:?}"
        );
    }
    assert!(s.errors.total() + s.dropped >= 30, "{s:#?}");
}

/// An overload the generator cannot carry: 300 req/s on a pool capped at 2 connections to a
/// server that takes 50 ms per request (about 40 req/s). The requests that never got a
/// connection are dropped at their intended second, every second shows its full load, and the
/// `gameday load` summary says the generator, not the target, could not send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_drops_at_the_intended_second_and_says_so() {
    let server = TestServer::start();
    server.delay_each(Duration::from_millis(50));
    let mut sp = spec(server.url("/"), 300.0, 2, "1s");
    sp.max_connections = Some(2);
    let (s, w) = run_load(&sp, 4, || {}).await;
    let line: Vec<_> = w.iter().map(|w| (w.index, w.ok, w.dropped)).collect();
    assert_eq!(w.len(), 4, "{line:?}");
    for w in &w {
        assert_eq!(w.attempted(), 300, "{line:?}");
        // At most ~40 answered a second; most were dropped in the second they were meant for.
        assert!(w.ok <= 60 && w.dropped >= 200, "{line:?}");
    }
    assert_eq!(s.requests + s.dropped, 1200, "{s:#?}");
    assert_eq!(s.connections_peak, 2);

    // The CLI says whose fault it was.
    let o = cmd()
        .args(["load", &server.url("/"), "--rate", "300", "-c", "2"])
        .args(["--max-connections", "2", "--timeout", "1s", "-z", "2s"])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(t.contains("DROPPED by the generator"), "{t}");
    assert!(
        t.contains("the generator, not the target, could not send"),
        "{t}"
    );
}

/// 150 requests of `method` with a body over 3 s on two connections.
async fn three_seconds_of(method: &str, server: &RawServer) -> LoadSummary {
    let mut sp = spec(server.url(), 50.0, 2, "2s");
    sp.url = None;
    sp.endpoints = vec![serde_json::from_value(
        serde_json::json!({ "url": server.url(), "method": method, "body": "order" }),
    )
    .unwrap()];
    run_load(&sp, 3, || {}).await.0
}

/// A server that closes every keep-alive connection after its answer (without saying
/// `Connection: close`): the generator sees each connection stale before it tries the next
/// request on it and takes a fresh one, so every request is sent once and counted once, GET
/// or POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_closed_after_every_answer_counts_each_request_once() {
    for method in ["GET", "POST"] {
        let server = RawServer::closes_after_every_answer();
        let s = three_seconds_of(method, &server).await;
        assert_eq!(s.requests + s.dropped, 150, "{method}: {s:#?}");
        assert_eq!(
            s.ok,
            server.answered(),
            "{method}: one answer, one ok: {s:#?}"
        );
        assert!(
            s.ok >= 145,
            "{method}: a stale connection is no failure: {s:#?}"
        );
        assert_eq!(s.ok + s.errors.total() + s.dropped, 150, "{method}: {s:#?}");
    }
}

/// A server that reads a second request on each keep-alive connection and closes without
/// answering it: that request reached the server, so it is never sent again, not even a GET
/// (RFC 9110 would allow it; a user's browser might; but the generator would then hide a
/// server that drops requests). Half the requests fail as `reset`, none is resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_server_took_and_never_answered_is_a_failure_not_a_resend() {
    for method in ["GET", "POST"] {
        let server = RawServer::one_answer_per_connection();
        let s = three_seconds_of(method, &server).await;
        assert_eq!(s.requests + s.dropped, 150, "{method}: {s:#?}");
        assert_eq!(s.retries, 0, "{method}: never resent: {s:#?}");
        assert_eq!(s.ok, server.answered(), "{method}: {s:#?}");
        let reset = s.errors.get(load::ErrorClass::Reset);
        assert!(
            reset >= 50 && s.ok + reset == 150,
            "{method}: it fails instead: {s:#?}"
        );
    }
}

/// A `reset` fault through the sandbox proxy while the load's keep-alive connections are open:
/// every request of the faulted seconds fails (each reached the proxy, so none is resent), and
/// the seconds before and after are clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_fault_is_not_masked_by_keep_alive_or_resends() {
    use gameday::targets::local::proxy::{LinkFaults, Proxy, Toxics};
    let server = TestServer::start();
    let cancel = CancellationToken::new();
    let proxy = Proxy::start(
        "127.0.0.1:0".parse().unwrap(),
        crate::sandbox_support::backends(vec![server.addr]),
        cancel.clone(),
    )
    .await
    .unwrap();
    let sp = spec(format!("http://{}/", proxy.local_addr()), 50.0, 2, "2s");
    let (handle, mut rx) = load::start(&sp, CancellationToken::new()).unwrap();
    let at = |s: f64| handle.started_at() + Duration::from_secs_f64(s);
    handle.stop_at(Duration::from_secs(4));
    tokio::time::sleep_until(at(1.0).into()).await;
    let fault = LinkFaults {
        upstream: Toxics {
            reset: true,
            ..Toxics::default()
        },
        downstream: Toxics::default(),
        percent: 100.0,
    };
    proxy.set_faults("rst", fault);
    tokio::time::sleep_until(at(3.0).into()).await;
    proxy.clear("rst");
    tokio::time::sleep_until(at(4.0).into()).await;
    let s = handle.finish_at(Duration::from_secs(4)).await;
    let mut w = Vec::new();
    while let Some(x) = rx.recv().await {
        w.push(x);
    }
    let line: Vec<_> = w
        .iter()
        .map(|w| (w.index, w.ok, w.requests, w.retries))
        .collect();
    assert_eq!(w.len(), 4, "{line:?}");
    assert!(
        w[0].ok >= 49 && w[3].ok >= 49,
        "clean before and after: {line:?}"
    );
    // The fault spans seconds 1 and 2; a request right at an edge may go either way.
    assert!(w[1].ok <= 2 && w[2].ok <= 2, "the reset is felt: {line:?}");
    assert_eq!(
        s.retries, 0,
        "a request the proxy took and reset is never resent: {s:#?}"
    );
    assert_eq!(s.requests + s.dropped, 200, "{s:#?}");
    cancel.cancel();
}
