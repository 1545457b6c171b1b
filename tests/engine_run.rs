//! The engine end to end on the local target: `plan` touches nothing, a run kills and
//! restarts real processes, SIGINT aborts cleanly, SIGKILL + `recover` leaves nothing behind.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::harden::wait_for;
use crate::support::{cmd, gameday, pids_with, status_server, text};

/// A scenario with a fleet of `python3 -m http.server` replicas, marked by a unique folder so
/// the test can find exactly its own processes.
fn scenario(dir: &Path, marker: &str, phases: &str) -> std::path::PathBuf {
    let www = dir.join(marker);
    std::fs::create_dir_all(&www).unwrap();
    let text = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: engine-test
target:
  local:
    max_percent: 50
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        replicas: 2
        health: /
phases:
{phases}"#,
        www = www.display()
    );
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `gameday run SCENARIO --out OUT --no-progress`, metrics on a free port.
fn run_cmd(scenario: &Path, out: &Path) -> Command {
    let mut c = cmd();
    c.arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .arg("--no-progress");
    c
}

fn ledger_of(out: &Path) -> std::path::PathBuf {
    let run = std::fs::read_dir(out)
        .unwrap()
        .next()
        .expect("a run folder")
        .unwrap()
        .path();
    run.join("ledger.jsonl")
}

#[test]
fn plan_resolves_targets_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("plan-{}", std::process::id());
    let s = scenario(dir.path(), &marker, "  - name: chaos\n    duration: 5s\n    faults:\n      - name: kill-one\n        at: 1s\n        process_kill: { service: web }\n");
    let out = dir.path().join("reports");
    let o = crate::support::cmd()
        .args(["plan", s.to_str().unwrap()])
        .env("GAMEDAY_OUT", &out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("fault `kill-one` (process_kill on local)"),
        "{t}"
    );
    assert!(t.contains("would hit 1 of 2 eligible, cap 1"), "{t}");
    assert!(pids_with(&marker).is_empty(), "plan started processes");
    assert!(!out.exists(), "plan wrote a run folder");
    // `run --dry-run` is the same plan.
    let o = crate::support::cmd()
        .args(["run", "--dry-run", s.to_str().unwrap(), "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("would hit 1 of 2 eligible"));
    assert!(!out.exists(), "dry run wrote a run folder");
    assert!(pids_with(&marker).is_empty());
}

/// The phase table keeps its columns whatever the names' lengths.
#[test]
fn plan_table_keeps_its_columns_with_a_long_phase_name() {
    let dir = tempfile::tempdir().unwrap();
    let long = "baseline-before-the-primary-database-failover-drill";
    let s = scenario(
        dir.path(),
        "table",
        &format!("  - name: {long}\n    duration: 2s\n  - name: chaos\n    duration: 1m30s\n"),
    );
    let o = gameday(&["plan", s.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    let rows: Vec<&str> = t
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("PHASE"))
        .take(3)
        .collect();
    assert_eq!(rows.len(), 3, "{t}");
    assert!(rows[1].contains(long) && rows[2].contains("chaos"), "{t}");
    // Every row has its ROLE cell where the header has ROLE, after the longest name.
    let col = |r: &str, word: &str| r.find(word).unwrap_or_else(|| panic!("{word} in {r}"));
    let role = col(rows[0], "ROLE");
    assert!(role > long.len(), "{t}");
    for r in &rows[1..] {
        let (name, rest) = r.split_at(role);
        assert!(
            name.ends_with(' ') && rest.starts_with(|c: char| c.is_ascii_lowercase()),
            "row not aligned at column {role}: {r:?}\n{t}"
        );
    }
    // The lengths line up on the right.
    let end = |r: &str, word: &str| col(r, word) + word.len();
    let length_end = end(rows[0], "LENGTH");
    assert_eq!(end(rows[1], " 2s"), length_end, "{t}");
    assert_eq!(end(rows[2], "1m30s"), length_end, "{t}");
}

#[test]
fn plan_flags_a_kill_over_the_blast_radius_cap() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "cap", "  - name: chaos\n    duration: 5s\n    faults:\n      - name: kill-all\n        process_kill: { service: web, percent: 100 }\n");
    let o = gameday(&["plan", s.to_str().unwrap()]);
    assert!(
        text(&o).contains("over the blast-radius cap of 1"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_run_kills_a_replica_the_supervisor_restarts_it_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("run-{}", std::process::id());
    let s = scenario(dir.path(), &marker, "  - name: baseline\n    duration: 2s\n  - name: chaos\n    duration: 4s\n    faults:\n      - name: kill-one\n        at: 1s\n        process_kill: { service: web }\n");
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ledger = std::fs::read_to_string(ledger_of(&out)).unwrap();
    let kills: Vec<&str> = ledger
        .lines()
        .filter(|l| l.contains("\"kind\":\"process_kill\""))
        .collect();
    assert_eq!(kills.len(), 1, "{ledger}");
    // 2 replicas + 1 restart, each recorded before being reverted at shutdown.
    let spawns = ledger
        .lines()
        .filter(|l| l.contains("\"kind\":\"process\""))
        .count();
    assert_eq!(spawns, 3, "{ledger}");
    assert!(
        ledger.lines().last().unwrap().contains("\"clean\":true"),
        "{ledger}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet processes left behind");
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ledger_of(&out).with_file_name("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run["outcome"], "held");
}

/// Phases that start off a whole second: the load's windows are cut at each phase start, so
/// every window lies in one phase and a baseline never counts a slice of the chaos; none
/// lies past the timeline's end, and each holds the requests meant for it.
#[test]
fn windows_end_at_phase_starts_off_the_whole_second() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("windows-{}", std::process::id());
    let (port, _) = status_server(200);
    let s = scenario(
        dir.path(),
        &marker,
        &format!(
            "  - name: baseline\n    duration: 1500ms\n  - name: chaos\n    duration: 1750ms\n    faults:\n      - name: kill-one\n        process_kill: {{ service: web }}\n  - name: recovery\n    duration: 1s\nload:\n  url: http://127.0.0.1:{port}/\n  rate: 40\n  connections: 2\n"
        ),
    );
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ledger_of(&out).with_file_name("journal.json")).unwrap(),
    )
    .unwrap();
    let span =
        |v: &serde_json::Value, a: &str, b: &str| (v[a].as_f64().unwrap(), v[b].as_f64().unwrap());
    let phases: Vec<(f64, f64)> = journal["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| span(p, "start_s", "end_s"))
        .collect();
    assert_eq!(phases.len(), 3);
    let windows = journal["windows"].as_array().unwrap();
    for w in windows {
        let (t, d) = span(w, "t_s", "duration_s");
        let inside = phases
            .iter()
            .any(|(a, b)| t + 1e-6 >= *a && t + d <= b + 1e-6);
        assert!(
            inside,
            "window [{t}, {}) straddles a phase edge or the end: {phases:?}",
            t + d
        );
        // Every request in the window of its intended time: 40 a second, whatever the
        // window's length (a sliver past the end with one request read as a spike).
        let asked = w["requests"].as_u64().unwrap() + w["dropped"].as_u64().unwrap();
        assert!(
            (asked as f64 - 40.0 * d).abs() <= 1.01,
            "window [{t}, {}) holds {asked} requests at 40/s",
            t + d
        );
    }
    for edge in [1.5, 3.25] {
        assert!(
            windows
                .iter()
                .any(|w| (w["t_s"].as_f64().unwrap() - edge).abs() < 1e-6),
            "no window starts at the phase edge {edge}: {windows:?}"
        );
    }
    assert!(pids_with(&marker).is_empty(), "fleet processes left behind");
}

#[test]
fn sigint_mid_run_reverts_everything_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sigint-{}", std::process::id());
    let s = scenario(dir.path(), &marker, "  - name: chaos\n    duration: 60s\n    faults:\n      - name: kill-one\n        at: 1s\n        every: 2s\n        process_kill: { service: web }\n");
    let out = dir.path().join("reports");
    let mut child = run_cmd(&s, &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "the first kill in the ledger",
        Duration::from_secs(30),
        || {
            out.exists()
                && std::fs::read_to_string(ledger_of(&out))
                    .is_ok_and(|l| l.contains("process_kill"))
        },
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_child(&mut child, Duration::from_secs(30));
    let o = child.wait_with_output().unwrap();
    assert_eq!(status, Some(3), "{}", text(&o));
    assert!(text(&o).contains("ABORTED"), "{}", text(&o));
    let ledger = std::fs::read_to_string(ledger_of(&out)).unwrap();
    assert!(
        ledger.lines().last().unwrap().contains("\"clean\":true"),
        "{ledger}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet processes left behind");
}

fn wait_child(child: &mut std::process::Child, timeout: Duration) -> Option<i32> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("gameday did not exit within {timeout:?}");
}

#[test]
fn sigkill_mid_run_then_recover_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("sigkill-{}", std::process::id());
    let s = scenario(dir.path(), &marker, "  - name: chaos\n    duration: 60s\n    faults:\n      - name: kill-one\n        at: 1s\n        every: 2s\n        process_kill: { service: web }\n");
    let out = dir.path().join("reports");
    let mut child = run_cmd(&s, &out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("a kill in the ledger", Duration::from_secs(30), || {
        out.exists()
            && std::fs::read_to_string(ledger_of(&out)).is_ok_and(|l| l.contains("process_kill"))
    });
    child.kill().unwrap(); // SIGKILL: no cleanup at all
    child.wait().unwrap();
    assert!(
        !pids_with(&marker).is_empty(),
        "the killed runner should have left its fleet running"
    );
    let o = gameday(&["recover", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("reverted fleet (process)"),
        "{}",
        text(&o)
    );
    wait_for("the fleet to be gone", Duration::from_secs(10), || {
        pids_with(&marker).is_empty()
    });
    // Idempotent: nothing left to do the second time.
    let o = gameday(&["recover", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to recover"), "{}", text(&o));
}

#[test]
fn a_stop_condition_aborts_the_run_and_reverts_first() {
    let (port, _code) = crate::support::status_server(503);
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("stop-{}", std::process::id());
    let www = dir.path().join(&marker);
    std::fs::create_dir_all(&www).unwrap();
    let s = dir.path().join("stop.yaml");
    std::fs::write(
        &s,
        format!(
            r#"apiVersion: gameday/v1
kind: Gameday
metadata: {{ name: stop-test }}
target:
  local:
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        replicas: 2
        health: /
load:
  url: http://127.0.0.1:{port}/
  rate: 50
  connections: 4
hypothesis:
  slos:
    - name: errors
      error_rate: {{ max_percent: 1 }}
stop_conditions:
  - name: error storm
    error_rate: {{ max_percent: 50 }}
    for: 2s
phases:
  - name: chaos
    duration: 60s
    faults:
      - name: kill-one
        at: 1s
        every: 5s
        process_kill: {{ service: web }}
"#,
            www = www.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("stop condition `error storm` fired"),
        "{}",
        text(&o)
    );
    let ledger = std::fs::read_to_string(ledger_of(&out)).unwrap();
    assert!(
        ledger.lines().last().unwrap().contains("\"clean\":true"),
        "{ledger}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet processes left behind");
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ledger_of(&out).with_file_name("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run["outcome"], "aborted");
    let events = run["events"].as_array().unwrap();
    let stop = events
        .iter()
        .position(|e| e["kind"] == "stop_condition")
        .expect("a stop_condition event");
    assert!(run["windows"].as_array().unwrap().len() >= 2);
    assert!(stop > 0);
    let end_s = run["phases"][0]["end_s"].as_f64().unwrap();
    assert!(
        end_s < 59.0,
        "the 60 s phase was not cut short: ended at {end_s}"
    );
}

/// A `recovery_time` SLO whose run ends before `max` has passed after the fault cannot be
/// judged: the verdict says "not measured", never a pass at 0 s, and the hypothesis does not
/// hold on it.
#[test]
fn recovery_time_cut_short_by_the_end_of_the_run_is_not_measured_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("rt-{}", std::process::id());
    let (port, _) = status_server(200);
    let s = scenario(
        dir.path(),
        &marker,
        &format!(
            "  - name: chaos\n    duration: 2s\n    faults:\n      - name: kill-one\n        at: 1s\n        process_kill: {{ service: web }}\nload:\n  url: http://127.0.0.1:{port}/\n  rate: 20\n  connections: 2\nhypothesis:\n  slos:\n    - name: up\n      availability: {{ min_percent: 90 }}\n    - name: back fast\n      recovery_time: {{ max: 30s }}\n"
        ),
    );
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out).output().unwrap();
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ledger_of(&out).with_file_name("journal.json")).unwrap(),
    )
    .unwrap();
    let slo = journal["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "back fast")
        .unwrap_or_else(|| panic!("{:#}", journal["slos"]));
    assert_eq!(slo["passed"], false, "{slo:#}\n{}", text(&o));
    assert!(
        slo["objective"].as_str().unwrap().contains("not measured"),
        "{slo:#}"
    );
    assert_ne!(journal["run"]["outcome"], "held", "{}", text(&o));
}
