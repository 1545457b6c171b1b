//! The load generator against real local servers: coordinated-omission correction, every
//! error class produced for real, TLS and HTTP/2, exact open-model counts, rate changes,
//! generator-lag trust, and the `gameday load` binary's JSON and HdrHistogram log.

use std::time::Duration;

use gameday::duration::Dur;
use gameday::load::{self, ErrorClass, HistBlob, LoadSpec, LoadSummary, Percentiles, Window};
use tokio_util::sync::CancellationToken;

use crate::support::http::{closed_port, self_signed, FullBacklog, RawServer, TestServer};

fn spec(url: String, rate: Option<f64>, connections: usize) -> LoadSpec {
    let mut s = LoadSpec::for_url(url);
    s.rate = rate;
    s.connections = connections;
    s
}

/// Runs a load for `secs` seconds (ending on the schedule), collecting the windows.
async fn run_for(spec: &LoadSpec, secs: f64) -> (LoadSummary, Vec<Window>) {
    let (handle, mut rx) = load::start(spec, CancellationToken::new()).unwrap();
    handle.stop_at(Duration::from_secs_f64(secs));
    tokio::time::sleep_until((handle.started_at() + Duration::from_secs_f64(secs)).into()).await;
    let summary = handle.finish_at(Duration::from_secs_f64(secs)).await;
    let mut windows = Vec::new();
    while let Some(w) = rx.recv().await {
        windows.push(w);
    }
    (summary, windows)
}

fn only_errors(s: &LoadSummary, class: ErrorClass) -> bool {
    s.errors.get(class) > 0 && s.errors.get(class) == s.errors.total() && s.ok == 0
}

/// A 500 ms stall of the target must show in the corrected p99 of an open-model run; the
/// service time of the same run, and a closed-model run through the same stall, are what an
/// uncorrected tool would report: the stall hides below their p99.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_shows_in_corrected_p99_and_hides_from_uncorrected() {
    let server = TestServer::start();
    let stall = Duration::from_millis(500);

    // Open model on a fixed pool of 2 connections (wrk2's model): 400 req/s for 4 s, the
    // target stalls at 1.5 s.
    let mut open = spec(server.url("/"), Some(400.0), 2);
    open.max_connections = Some(2);
    let s = &server;
    let ((summary, _), ()) = tokio::join!(run_for(&open, 4.0), async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.stall_for(stall);
    });
    assert_eq!(summary.errors.total(), 0, "{summary:#?}");
    assert_eq!(
        summary.requests, 1600,
        "exactly rate x duration: {summary:#?}"
    );
    // Requests meant to leave during the stall waited for it: the corrected p99 sees it.
    assert!(
        summary.latency.p99 >= 400.0,
        "corrected p99 misses the stall: {:?}",
        summary.latency
    );
    // Uncorrected (from the actual send), only the 2 requests in flight saw it: below p99.
    assert!(
        summary.service.p99 < 250.0,
        "service p99 {:?}",
        summary.service
    );
    assert!(
        summary.service.max >= 400.0,
        "the stalled requests themselves: {:?}",
        summary.service
    );
    assert!(
        summary.late > 0,
        "requests queued behind the stall are counted late"
    );

    // The default elastic pool: users arriving during the stall each wait on a connection
    // of their own, as real users would, so none waits in the generator and the stall shows
    // in the service time too.
    let elastic = spec(server.url("/"), Some(400.0), 2);
    let ((el, el_w), ()) = tokio::join!(run_for(&elastic, 4.0), async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.stall_for(stall);
    });
    let per: Vec<_> = el_w
        .iter()
        .map(|w| (w.index, w.requests, w.dropped))
        .collect();
    assert_eq!(el.requests, 1600, "{per:?} {el:#?}");
    // A connection was free for (nearly) every user: the fixed pool above queued every user
    // of the stall (~200) in the generator; here at most scheduling noise of a loaded machine.
    assert!(
        el.late * 10 < summary.late,
        "late {} vs {}",
        el.late,
        summary.late
    );
    assert!(
        summary.late >= 100,
        "the fixed pool queued the stall: {}",
        summary.late
    );
    assert!(el.service.p99 >= 400.0, "service {:?}", el.service);
    assert!(el.latency.p99 >= 400.0, "corrected {:?}", el.latency);

    // Closed model through the same stall: what wrk or oha without -q would report.
    let closed = spec(server.url("/"), None, 2);
    let ((closed_summary, _), ()) = tokio::join!(run_for(&closed, 3.0), async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.stall_for(stall);
    });
    assert!(closed_summary.requests > 1000, "{closed_summary:#?}");
    assert!(
        closed_summary.latency.p99 < 250.0,
        "closed model hides the stall below p99: {:?}",
        closed_summary.latency
    );
    assert!(
        closed_summary.latency.max >= 400.0,
        "{:?}",
        closed_summary.latency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_is_connect_refused() {
    let addr = closed_port();
    let (s, _) = run_for(&spec(format!("http://{addr}/"), Some(100.0), 2), 1.0).await;
    assert!(only_errors(&s, ErrorClass::ConnectRefused), "{s:#?}");
    assert_eq!(s.requests, 100);
    // Fast failures are counted, never recorded as (flattering) latencies.
    assert_eq!(s.latency.count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_reset_is_reset() {
    let server = RawServer::resetting();
    let (s, _) = run_for(&spec(server.url(), Some(100.0), 2), 1.0).await;
    assert!(only_errors(&s, ErrorClass::Reset), "{s:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_request_timeout_recorded_at_the_wait() {
    let server = RawServer::silent();
    let mut sp = spec(server.url(), Some(20.0), 4);
    sp.timeout = Dur::from_millis(200);
    let (s, _) = run_for(&sp, 1.0).await;
    assert!(only_errors(&s, ErrorClass::RequestTimeout), "{s:#?}");
    // A user waited at least the timeout: that wait is in latency, not hidden.
    assert!(
        s.latency.count > 0 && s.latency.p50 >= 200.0,
        "{:?}",
        s.latency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_accept_queue_is_connect_timeout() {
    let target = FullBacklog::new().await;
    let mut sp = spec(format!("http://{}/", target.addr), Some(10.0), 2);
    sp.connect_timeout = Some(Dur::from_millis(300));
    let (s, _) = run_for(&sp, 1.0).await;
    assert!(only_errors(&s, ErrorClass::ConnectTimeout), "{s:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_are_classified() {
    let server = TestServer::start();
    server.set_status(503);
    let (s, _) = run_for(&spec(server.url("/"), Some(100.0), 2), 1.0).await;
    assert!(only_errors(&s, ErrorClass::Http5xx), "{s:#?}");
    assert_eq!(s.requests, 100);
    assert_eq!(server.requests(), 100, "every request reached the target");
    // A 503 is an answer: its latency is recorded.
    assert_eq!(s.latency.count, 100);

    server.set_status(404);
    let (s, _) = run_for(&spec(server.url("/"), Some(100.0), 2), 1.0).await;
    assert!(only_errors(&s, ErrorClass::Http4xx), "{s:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_tls_error() {
    let (config, _ca) = self_signed();
    let server = TestServer::start_tls(config);
    let (s, _) = run_for(&spec(server.https_url("/"), Some(50.0), 2), 1.0).await;
    assert!(only_errors(&s, ErrorClass::Tls), "{s:#?}");
    assert_eq!(server.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_trusted_ca_works_on_http1_and_http2() {
    let (config, ca) = self_signed();
    let server = TestServer::start_tls(config);
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    for http2 in [false, true] {
        let mut sp = spec(server.https_url("/"), Some(100.0), 2);
        sp.ca_file = Some(ca_path.clone());
        sp.http2 = http2;
        let (s, _) = run_for(&sp, 1.0).await;
        assert_eq!(s.ok, 100, "http2={http2}: {s:#?}");
    }
    // And `insecure` accepts it without the CA.
    let mut sp = spec(server.https_url("/"), Some(100.0), 2);
    sp.insecure = true;
    let (s, _) = run_for(&sp, 1.0).await;
    assert_eq!(s.ok, 100, "{s:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_and_weighted_endpoints() {
    let server = TestServer::start();
    let yaml = format!(
        "endpoints:\n  - url: {}\n    weight: 3\n  - url: {}\n    method: POST\n    body: hi\n    headers: {{x-test: yes}}\nrate: 200\nconnections: 2\nhttp2: true\n",
        server.url("/a"),
        server.url("/b")
    );
    let sp: LoadSpec = serde_saphyr::from_str(&yaml).unwrap();
    let (s, _) = run_for(&sp, 1.0).await;
    assert_eq!(s.ok, 200, "{s:#?}");
    assert_eq!(server.requests(), 200);
}

/// The open model sends exactly rate x duration when the target keeps up, and the windows'
/// histograms merge back into the run's (phases are such merges).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_is_exact_and_windows_merge_into_the_run() {
    let server = TestServer::start();
    let (s, windows) = run_for(&spec(server.url("/"), Some(300.0), 4), 2.5).await;
    assert_eq!(s.requests, 750, "{s:#?}");
    assert_eq!(s.dropped, 0);
    assert_eq!(s.rate_requested, Some(300.0));
    assert_eq!(windows.len() as u64, s.windows);
    assert_eq!(windows.iter().map(|w| w.requests).sum::<u64>(), s.requests);
    let merged = load::merge(windows.iter().map(|w| &w.histograms.latency)).unwrap();
    assert_eq!(Percentiles::of(&merged), s.latency);
    let phase = load::HistSet::merge(windows[..2].iter().map(|w| &w.histograms)).unwrap();
    assert_eq!(
        Percentiles::of_blob(&phase.latency).unwrap().count,
        windows[0].latency.count + windows[1].latency.count
    );
    // Windows are serializable for the journal, histograms included.
    let json = serde_json::to_string(&windows[0]).unwrap();
    let back: Window = serde_json::from_str(&json).unwrap();
    assert_eq!(back.histograms, windows[0].histograms);
    assert_eq!(
        (back.index, back.requests, back.errors),
        (windows[0].index, windows[0].requests, windows[0].errors)
    );
    assert!(HistBlob::decode(&back.histograms.service).is_ok());
}

/// Started 300 ms into the caller's clock (a gameday's run), the windows end on the caller's
/// whole seconds: the first is short, no later one straddles a second, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_align_to_the_callers_clock() {
    let server = TestServer::start();
    let epoch = std::time::Instant::now() - Duration::from_millis(300);
    let sp = spec(server.url("/"), Some(200.0), 4);
    // Two phase edges off the whole seconds (on the caller's clock), and one within a
    // millisecond of a whole second, which must not leave a sliver of a window.
    let cuts = [1.5, 2.25, 2.9995];
    let (handle, mut rx) =
        load::start_on_clock(&sp, CancellationToken::new(), Some(clock(epoch, &cuts))).unwrap();
    let offset = handle
        .started_at()
        .saturating_duration_since(epoch)
        .as_secs_f64();
    handle.stop_at(Duration::from_secs_f64(3.5));
    tokio::time::sleep_until((handle.started_at() + Duration::from_secs_f64(3.5)).into()).await;
    let summary = handle.finish_at(Duration::from_secs_f64(3.5)).await;
    let mut windows = Vec::new();
    while let Some(w) = rx.recv().await {
        windows.push(w);
    }
    assert_eq!(summary.requests, 700, "{summary:#?}");
    assert_eq!(windows.iter().map(|w| w.requests).sum::<u64>(), 700);
    assert!(
        (windows[0].duration_s - (1.0 - offset.fract())).abs() < 1e-6,
        "first window {} s for an offset of {offset} s",
        windows[0].duration_s
    );
    let starts: Vec<f64> = windows.iter().map(|w| w.start_s + offset).collect();
    for (w, at) in windows[1..].iter().zip(&starts[1..]) {
        let on_a_second = (at - at.round()).abs() < 1e-6;
        let on_a_cut = [1.5, 2.25].iter().any(|c| (at - c).abs() < 1e-6);
        assert!(
            on_a_second || on_a_cut,
            "window {} starts at {at} s on the caller's clock: {starts:?}",
            w.index
        );
        assert!(w.duration_s > 0.002, "a sliver of a window: {w:#?}");
    }
    for cut in [1.5, 2.25] {
        assert!(
            starts.iter().any(|at| (at - cut).abs() < 1e-6),
            "no window starts at the cut {cut}: {starts:?}"
        );
    }
    for pair in windows.windows(2) {
        assert!((pair[0].start_s + pair[0].duration_s - pair[1].start_s).abs() < 1e-9);
    }
}

/// The caller's clock at `epoch`, with cuts at those seconds of it.
fn clock(epoch: std::time::Instant, cuts: &[f64]) -> load::Clock {
    load::Clock {
        epoch,
        cuts: cuts.iter().map(|c| Duration::from_secs_f64(*c)).collect(),
    }
}

/// A rate change mid-run: the run sends exactly what the changed schedule asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_rate_ramps_the_schedule() {
    let server = TestServer::start();
    let (handle, mut rx) = load::start(
        &spec(server.url("/"), Some(50.0), 4),
        CancellationToken::new(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    handle.set_rate(250.0, Duration::from_millis(500)).unwrap();
    handle.stop_at(Duration::from_secs(3));
    tokio::time::sleep_until((handle.started_at() + Duration::from_secs(3)).into()).await;
    assert!((handle.current_rate().unwrap() - 250.0).abs() < 1e-6);
    let s = handle.finish_at(Duration::from_secs(3)).await;
    let asked = s.rate_requested.unwrap() * s.duration_s;
    assert!(asked > 400.0, "the rate went up: {asked}");
    assert!(
        (s.requests as f64 - asked).abs() <= 1.0,
        "sent {} for {asked} asked",
        s.requests
    );
    let mut windows = Vec::new();
    while let Some(w) = rx.recv().await {
        windows.push(w);
    }
    let rate = |w: &Window| w.rate_requested.unwrap();
    assert!(
        (rate(&windows[0]) - 50.0).abs() < 1e-6,
        "{:?}",
        windows[0].rate_requested
    );
    assert!(
        (rate(&windows[2]) - 250.0).abs() < 1e-6,
        "{:?}",
        windows[2].rate_requested
    );
    // A closed-model run has no rate to set.
    let (closed, _rx) =
        load::start(&spec(server.url("/"), None, 1), CancellationToken::new()).unwrap();
    assert!(closed.set_rate(10.0, Duration::ZERO).is_err());
    closed.finish().await;
}

/// When the generator itself cannot run (here its only thread is blocked for 400 ms), the
/// window says so instead of blaming the target.
#[tokio::test(flavor = "current_thread")]
async fn starved_generator_marks_the_window_untrusted() {
    let server = TestServer::start();
    let mut sp = spec(server.url("/"), Some(200.0), 4);
    sp.threads = Some(0); // on this test's single thread, which the test then blocks
    let (handle, mut rx) = load::start(&sp, CancellationToken::new()).unwrap();
    handle.stop_at(Duration::from_secs(3));
    tokio::time::sleep_until((handle.started_at() + Duration::from_millis(1200)).into()).await;
    std::thread::sleep(Duration::from_millis(400)); // the generator's thread is starved
    tokio::time::sleep_until((handle.started_at() + Duration::from_secs(3)).into()).await;
    let s = handle.finish_at(Duration::from_secs(3)).await;
    let mut windows = Vec::new();
    while let Some(w) = rx.recv().await {
        windows.push(w);
    }
    assert!(
        s.untrusted_windows.contains(&1),
        "{:?} {:#?}",
        s.untrusted_windows,
        windows[1]
    );
    assert!(!windows[1].trusted);
    assert!(windows[1].lag.max >= 300.0, "{:?}", windows[1].lag);
}

/// `gameday load --json` prints exactly one JSON object with the documented keys, and
/// `--hdr-log` writes an interval log HdrHistogram can read back.
/// A host name that does not resolve is a `dns` error. The only resolver this machine knows
/// is off loopback, so the load runs in a network namespace of its own (`unshare -n`, only
/// a loopback interface, down): the lookup fails at once and no query leaves the namespace.
#[test]
fn unresolvable_host_is_dns_error() {
    let probe = std::process::Command::new("unshare")
        .args(["-n", "true"])
        .status();
    if !probe.as_ref().is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to create a network namespace (unshare -n): {probe:?}"
        );
        eprintln!("SKIPPED: cannot create a network namespace here");
        return;
    }
    let out = std::process::Command::new("unshare")
        .arg("-n")
        .arg(env!("CARGO_BIN_EXE_gameday"))
        .args([
            "load",
            "http://unresolvable.test:8080/",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["requests"], 20, "{v:#}");
    assert_eq!(v["ok"], 0, "{v:#}");
    assert_eq!(
        v["errors"]["dns"], 20,
        "every request failed to resolve: {v:#}"
    );
}

#[test]
fn cli_json_and_hdr_log() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.hlog");
    let out = crate::support::cmd()
        .args([
            "load",
            &server.url("/"),
            "--rate",
            "200",
            "--duration",
            "1s",
            "-c",
            "4",
            "--json",
            "--hdr-log",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1);
    assert_eq!(v["requests"], 200);
    assert_eq!(v["rate_requested"], 200.0);
    for k in [
        "duration_s",
        "rate_achieved",
        "errors",
        "dropped",
        "late",
        "untrusted_windows",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    for k in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(v["latency_ms"][k].is_number(), "latency_ms.{k}: {v}");
    }
    // The whole object follows the published schema.
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(load_schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    for c in ErrorClass::ALL {
        assert_eq!(v["errors"][c.as_str()], 0, "{v}");
    }
    let bytes = std::fs::read(&log).unwrap();
    let mut latency_count = 0;
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&bytes) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) = entry.unwrap() {
            if h.tag().is_none() {
                let blob = HistBlob(h.encoded_histogram().to_owned());
                latency_count += blob.decode().unwrap().len();
            }
        }
    }
    assert_eq!(latency_count, 200);
}

fn load_schema_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/load.schema.json")
}

/// `schemas/load.schema.json` is generated from the `--json` type; regenerate with
/// `GAMEDAY_UPDATE_SCHEMAS=1 cargo test load_schema_is_up_to_date`.
#[test]
fn load_schema_is_up_to_date() {
    let generated =
        serde_json::to_string_pretty(&gameday::load::cli::load_report_schema()).unwrap() + "\n";
    let path = load_schema_path();
    if std::env::var_os("GAMEDAY_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is out of date with LoadReport: run `GAMEDAY_UPDATE_SCHEMAS=1 cargo test \
         load_schema_is_up_to_date` and commit the result",
        path.display()
    );
}
