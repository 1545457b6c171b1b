//! Security of the runner's own output: planted credentials (environment, kubeconfig, a
//! service's `env:`, a load request header) appear in no log line, stdout, ledger, journal or
//! fleet log; the run folder and its files are private even under `umask 000`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::support::harden::{fleet_scenario, ledgers};
use crate::support::{cmd, free_port, pids_with, status_server, text};

const AWS_SECRET: &str = "planted-aws-secret-Zq7Kp2Lw9Xv4";
const KUBE_TOKEN: &str = "planted-kube-token-Hn3Rt8Ys1Md6";
const SERVICE_SECRET: &str = "planted-db-password-Jc5Wb0Fe2Ug7";
const HEADER_SECRET: &str = "planted-bearer-Vt4Qa9Ni6Ol3";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// GETs `/metrics` on 127.0.0.1:`port`, or `None` while nothing answers.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.").then_some(body)
}

/// A gameday with every kind of planted credential, run with JSON logs at trace level and a
/// umask that would make everything world-writable; `/metrics` is scraped while it runs.
/// Returns the temp dir, stdout+stderr, the `--out` folder and the last scrape.
fn planted_run() -> (tempfile::TempDir, String, PathBuf, String) {
    let (port, _code) = status_server(200);
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sec-{}", std::process::id());
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{{name: c, context: {{cluster: k, user: u}}}}]\nclusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:1'}}}}]\nusers: [{{name: u, user: {{token: {KUBE_TOKEN}}}}}]\n"
        ),
    )
    .unwrap();
    let s = fleet_scenario(
        dir.path(),
        &marker,
        &format!("        env:\n          DB_PASSWORD: {SERVICE_SECRET}\n"),
        &format!(
            "load:\n  endpoints:\n    - url: http://127.0.0.1:{port}/\n      headers:\n        Authorization: Bearer {HEADER_SECRET}\n  rate: 20\n  connections: 2\n"
        ),
        "  - name: chaos\n    duration: 3s\n    faults:\n      - name: kill-one\n        at: 1s\n        process_kill: { service: web }\n",
    );
    let out = dir.path().join("reports");
    let metrics_port = free_port();
    let mut cmd = cmd();
    cmd.args([
        "--log-format",
        "json",
        "--log-level",
        "trace",
        "run",
        s.to_str().unwrap(),
        "--no-progress",
        "--out",
    ])
    .arg(&out)
    .env("AWS_ACCESS_KEY_ID", "AKIAPLANTEDKEYID0000")
    .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    .env("AWS_SESSION_TOKEN", AWS_SECRET)
    .env("KUBECONFIG", &kubeconfig)
    .env("RUST_LOG", "trace")
    .env("GAMEDAY_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"));
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Scrape while it runs, until a fault has been counted (bounded by the run's length).
    let mut metrics = String::new();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < end {
        if let Some(m) = scrape(metrics_port) {
            let done = m.contains("process_kill");
            metrics = m;
            if done {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        &t[t.len().saturating_sub(3000)..]
    );
    assert!(pids_with(&marker).is_empty(), "fleet processes left behind");
    assert!(
        metrics.contains("gameday_"),
        "no metrics scraped from 127.0.0.1:{metrics_port}: {metrics}"
    );
    (dir, t, out, metrics)
}

#[test]
fn planted_credentials_appear_in_no_output_and_report_files_are_private() {
    let (dir, output, out, metrics) = planted_run();
    // `plan` shows targets and faults: none of the secrets either.
    let plan = cmd()
        .args(["plan"])
        .arg(dir.path().join("scenario.yaml"))
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let output = format!("{output}{}{metrics}", text(&plan));
    // The logs really are JSON at trace level (or the check below would prove little).
    let json_lines = output
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .count();
    assert!(json_lines > 5, "expected JSON log lines:\n{output}");
    let secrets = [AWS_SECRET, KUBE_TOKEN, SERVICE_SECRET, HEADER_SECRET];
    for s in secrets {
        assert!(!output.contains(s), "`{s}` in stdout/stderr");
    }
    let run_dir = ledgers(&out)[0].parent().unwrap().to_path_buf();
    let files = files_under(&run_dir);
    assert!(
        files.iter().any(|f| f.ends_with("run.json")),
        "no journal in {files:?}"
    );
    for f in files.iter().filter(|f| f.is_file()) {
        let bytes = std::fs::read(f).unwrap();
        let content = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(!content.contains(s), "`{s}` in {}", f.display());
        }
    }

    // Modes, under umask 000: the run folder is closed to others, nothing is world-writable,
    // and the ledger and journal are not world-readable.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&run_dir) & 0o007,
        0,
        "run folder {} is {:o}",
        run_dir.display(),
        mode(&run_dir)
    );
    for f in &files {
        assert_eq!(
            mode(f) & 0o002,
            0,
            "{} is world-writable ({:o})",
            f.display(),
            mode(f)
        );
    }
    for name in ["ledger.jsonl", "run.json"] {
        let m = mode(&run_dir.join(name));
        assert_eq!(m & 0o007, 0, "{name} is {m:o}");
    }
}

/// `/metrics` listens on loopback unless told otherwise: the default address is 127.0.0.1,
/// and a run with the default serves nothing on the machine's other addresses.
#[test]
fn metrics_listen_on_loopback_by_default() {
    let addr: std::net::SocketAddr = gameday::observe::metrics::DEFAULT_ADDR.parse().unwrap();
    assert!(addr.ip().is_loopback(), "default metrics address {addr}");
    // The CLI's default is that constant (and `GAMEDAY_METRICS_ADDR` overrides it).
    let help = cmd()
        .env_remove("GAMEDAY_METRICS_ADDR")
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(
        text(&help).contains("[default: 127.0.0.1:8067]"),
        "{}",
        text(&help)
    );
}
