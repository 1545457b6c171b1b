//! The run's Prometheus endpoint: served on the address asked for, with the build version,
//! injections, the phase and the load; scraped for real by Prometheus when it is installed.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{cmd, free_port, pids_with, status_server, text};

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// `gameday run SCENARIO --no-progress --out OUT` (metrics address as the test sets it).
fn run_cmd(scenario: &std::path::Path, out: &std::path::Path) -> std::process::Command {
    let mut c = cmd();
    c.arg("run")
        .arg(scenario)
        .arg("--no-progress")
        .arg("--out")
        .arg(out);
    c
}

fn scenario(dir: &std::path::Path, marker: &str, load_port: u16) -> std::path::PathBuf {
    let www = dir.join(marker);
    std::fs::create_dir_all(&www).unwrap();
    let p = dir.join("metrics.yaml");
    std::fs::write(
        &p,
        format!(
            r#"apiVersion: gameday/v1
kind: Gameday
metadata: {{ name: metrics-test }}
target:
  local:
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        replicas: 2
        health: /
load:
  url: http://127.0.0.1:{load_port}/
  rate: 20
hypothesis:
  slos:
    - name: errors
      error_rate: {{ max_percent: 5 }}
phases:
  - name: chaos
    duration: 8s
    faults:
      - name: kill-one
        at: 1s
        process_kill: {{ service: web }}
"#,
            www = www.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn metrics_are_served_on_the_address_asked_for_during_a_run() {
    let (load_port, _) = status_server(200);
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("metrics-{}", std::process::id());
    let s = scenario(dir.path(), &marker, load_port);
    let port = free_port();
    let out = dir.path().join("reports");
    let mut child = run_cmd(&s, &out)
        .env("GAMEDAY_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Scrape until the kill and some load show up (or the run ends).
    let mut last = String::new();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Some(body) = get(port, "/metrics") {
            last = body;
            if last.contains("gameday_injections_total{kind=\"process_kill\",target=\"local\"} 1")
                && last.contains("gameday_load_requests_total{outcome=\"ok\"}")
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(last.contains("gameday_build_info{version=\""), "{last}");
    assert!(
        last.contains("gameday_injections_total{kind=\"process_kill\",target=\"local\"} 1"),
        "{last}"
    );
    assert!(last.contains("gameday_phase{phase=\"chaos\"} 1"), "{last}");
    assert!(
        last.contains("gameday_load_latency_seconds_bucket"),
        "{last}"
    );
    assert!(
        last.contains("gameday_hypothesis_slo_ok{slo=\"errors\"} 1"),
        "{last}"
    );
    assert!(pids_with(&marker).is_empty());
    // Loopback by default: the listener was on 127.0.0.1 only.
    assert!(
        get(port, "/metrics").is_none(),
        "the endpoint outlived the run"
    );
}

/// The default 8067 taken by another program: metrics are for watching, not for safety, so
/// the run goes on with its metrics on another free loopback port and says where. (An
/// address the person asked for is refused instead: the test below.)
#[test]
fn a_taken_default_metrics_port_moves_to_a_free_one_and_the_run_goes_on() {
    // Hold 8067 for the whole run; if something else holds it already, it is taken all the same.
    let _held = std::net::TcpListener::bind("127.0.0.1:8067");
    assert!(
        std::net::TcpListener::bind("127.0.0.1:8067").is_err(),
        "8067 should be taken now"
    );
    let (load_port, _) = status_server(200);
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("metrics-default-{}", std::process::id());
    let s = scenario(dir.path(), &marker, load_port);
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out)
        .env_remove("GAMEDAY_METRICS_ADDR")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("the default address 127.0.0.1:8067 is taken by another program; serving on http://127.0.0.1:"),
        "{t}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet processes left behind");
}

#[test]
fn a_taken_metrics_port_stops_the_run_before_anything_happens() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("metrics-taken-{}", std::process::id());
    let s = scenario(dir.path(), &marker, 9);
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out)
        .env("GAMEDAY_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains("cannot serve metrics on"), "{}", text(&o));
    assert!(text(&o).contains("--metrics-addr"), "{}", text(&o));
    assert!(
        pids_with(&marker).is_empty(),
        "the fleet started although the run could not"
    );
}

#[test]
fn a_real_prometheus_scrapes_a_run() {
    let Some(prom) = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!(
            "SKIPPED: prometheus is not installed (scripts/test.sh installs Debian's `prometheus`)"
        );
        return;
    };
    let (load_port, _) = status_server(200);
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("metrics-prom-{}", std::process::id());
    let s = scenario(dir.path(), &marker, load_port);
    let port = free_port();
    let prom_port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: gameday\n    static_configs: [ {{ targets: ['127.0.0.1:{port}'] }} ]\n"),
    )
    .unwrap();
    let mut prometheus = std::process::Command::new(prom)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = dir.path().join("reports");
    let status = run_cmd(&s, &out)
        .env("GAMEDAY_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    // Ask Prometheus what it scraped during the run.
    let mut answer = String::new();
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if let Some(a) = get(
            prom_port,
            "/api/v1/query?query=max_over_time(gameday_injections_total%5B5m%5D)",
        ) {
            answer = a;
            if answer.contains("process_kill") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(
        answer.contains("\"kind\":\"process_kill\""),
        "prometheus saw no injection: {answer}"
    );
    assert!(answer.contains("\"job\":\"gameday\""), "{answer}");
}
