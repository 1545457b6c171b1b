//! Signals on a run (issue #13): copies of one signal (from `timeout`, or sent to the whole
//! process group) never abandon the revert; the run exits 3 with nothing left running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::harden::wait_for;
use crate::support::{cmd, free_port, ledger_in, text};

/// Pids of live processes whose environment holds `marker` (one test's fleet).
pub fn pids_with_env(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| *p != me && crate::support::alive(*p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| String::from_utf8_lossy(&env).contains(marker))
        })
        .collect()
}

/// A demo-service backend behind gameday's proxy with a latency fault on from the start of a
/// long phase; the fleet carries `MARKER=<marker>`.
pub fn demo_scenario(dir: &Path, marker: &str) -> PathBuf {
    let exe = env!("CARGO_BIN_EXE_gameday");
    let port = free_port();
    let yaml = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: signals
target:
  local:
    services:
      - name: backend
        command: ["{exe}", demo-service, backend]
        replicas: 2
        port: {port}
        health: /readyz
        env: {{ MARKER: "{marker}" }}
phases:
  - name: chaos
    duration: 60s
    faults:
      - name: slow-link
        network: {{ service: backend, latency: 300ms }}
"#
    );
    let p = dir.join("signals.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// The ledger's last record says the run ended clean, and nothing in it is pending.
fn assert_clean(ledger: &Path) {
    let records = gameday::ledger::read(ledger).unwrap();
    assert!(
        gameday::ledger::pending(&records).is_empty(),
        "{records:#?}"
    );
    assert!(
        matches!(
            records.last(),
            Some(gameday::ledger::Record::RunEnd { clean: true, .. })
        ),
        "{records:#?}"
    );
}

/// Regression (issue #13): `timeout -s INT` signals the child and then its own process
/// group, so gameday got SIGINT twice within a millisecond, took the second for "exit at
/// once", exited 4 and left its fleet running.
#[test]
fn timeout_s_int_around_a_run_reverts_everything_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sig-timeout-{}", std::process::id());
    let s = demo_scenario(dir.path(), &marker);
    let out = dir.path().join("reports");
    let o = Command::new("timeout")
        .args(["--preserve-status", "-s", "INT", "6"])
        .arg(crate::support::bin())
        .arg("run")
        .arg(&s)
        .arg("--out")
        .arg(&out)
        .arg("--no-progress")
        .env("GAMEDAY_METRICS_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    let ledger = ledger_in(&out).expect("a ledger");
    let l = std::fs::read_to_string(&ledger).unwrap();
    assert!(
        l.contains("\"kind\":\"network\""),
        "the signal came before the fault (raise the timeout): {l}"
    );
    assert_clean(&ledger);
    assert!(pids_with_env(&marker).is_empty(), "fleet left running: {t}");
}

/// SIGTERM sent twice to the runner's process group within a millisecond (a supervisor
/// stopping a job): one abort, a full revert, exit 3, nothing left.
#[test]
fn sigterm_twice_to_the_process_group_reverts_everything_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sig-group-{}", std::process::id());
    let s = demo_scenario(dir.path(), &marker);
    let out = dir.path().join("reports");
    let child = {
        use std::os::unix::process::CommandExt;
        cmd()
            .arg("run")
            .arg(&s)
            .arg("--out")
            .arg(&out)
            .arg("--no-progress")
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    wait_for("the fault in the ledger", Duration::from_secs(30), || {
        ledger_in(&out).is_some_and(|l| {
            std::fs::read_to_string(l).is_ok_and(|t| t.contains("\"kind\":\"network\""))
        })
    });
    let pgid = child.id() as i32;
    // SAFETY: signals the test's own child's process group (never 0 or 1: a spawned pid).
    unsafe {
        libc::kill(-pgid, libc::SIGTERM);
        libc::kill(-pgid, libc::SIGTERM);
    }
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    // Whether the copy is seen at all is the kernel's choice: a second SIGTERM that arrives
    // while the first is still pending is merged into it. Either way, one abort.
    assert_eq!(t.matches("SIGTERM received: reverting").count(), 1, "{t}");
    assert_clean(&ledger_in(&out).unwrap());
    assert!(pids_with_env(&marker).is_empty(), "fleet left running: {t}");
}

/// A deliberate second signal, 3 s after the first, while the revert is still being retried
/// (the sandbox's fail point keeps the `network` revert failing): gameday exits at once
/// with 4, stops its own fleet first, names the fault it leaves and the exact ledger file,
/// and `gameday recover --ledger` on that file then finishes the job.
#[test]
fn a_later_second_signal_exits_at_once_stops_the_fleet_and_names_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sig-later-{}", std::process::id());
    let s = demo_scenario(dir.path(), &marker);
    let out = dir.path().join("reports");
    let child = cmd()
        .arg("run")
        .arg(&s)
        .arg("--out")
        .arg(&out)
        .arg("--no-progress")
        .env(gameday::failpoints::ENV, "local-revert=return(network)")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the fault in the ledger", Duration::from_secs(30), || {
        ledger_in(&out).is_some_and(|l| {
            std::fs::read_to_string(l).is_ok_and(|t| t.contains("\"kind\":\"network\""))
        })
    });
    let ledger = ledger_in(&out).unwrap();
    let pid = child.id() as i32;
    // SAFETY: signals the test's own child (a spawned pid, never 0 or 1).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for(
        "the run reverting with its fleet up",
        Duration::from_secs(10),
        || {
            pids_with_env(&marker).len() == 2
                && std::fs::read_to_string(&ledger).is_ok_and(|l| !l.contains("\"op\":\"revert\""))
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(
        t.contains("second SIGTERM: stopped 2 fleet process(es)"),
        "{t}"
    );
    assert!(t.contains("leaving 1 fault(s) injected"), "{t}");
    assert!(t.contains("  - slow-link (network on local)"), "{t}");
    assert!(
        t.contains(&format!(
            "run `gameday recover --ledger {}`",
            ledger.display()
        )),
        "{t}"
    );
    assert!(pids_with_env(&marker).is_empty(), "fleet left running: {t}");
    let records = gameday::ledger::read(&ledger).unwrap();
    assert_eq!(
        gameday::ledger::pending(&records)
            .iter()
            .filter(|p| p.kind == "network")
            .count(),
        1,
        "the fault stays pending for recover: {records:#?}"
    );
    let r = cmd()
        .arg("recover")
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    let records = gameday::ledger::read(&ledger).unwrap();
    assert!(
        gameday::ledger::pending(&records).is_empty(),
        "{records:#?}"
    );
}
