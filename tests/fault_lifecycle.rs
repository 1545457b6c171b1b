//! The life of one injection in the engine (issue #13): a fault ends with its phase, every
//! time; a ledger that cannot be read is never "clean"; reverts are retried.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gameday::engine::events::EventKind;
use gameday::engine::runner::{self, Abort, Outcome, RunOptions};

use crate::support::harden::wait_for;
use crate::support::{cmd, free_port, ledger_in, pids_with, text};

/// A local fleet of one `python3 -m http.server` behind gameday's proxy, a `network` latency
/// fault with no `duration` (so it ends with its phase), then a recovery phase.
fn phase_end_scenario(dir: &Path, marker: &str) -> gameday::scenario::Loaded {
    let www = dir.join(marker);
    std::fs::create_dir_all(&www).unwrap();
    let port = free_port();
    let yaml = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: phase-end
target:
  local:
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        port: {port}
        health: /
phases:
  - name: chaos
    duration: 1s
    faults:
      - name: slow-link
        network: {{ service: web, latency: 200ms }}
  - name: recovery
    role: recovery
    duration: 1s
"#,
        www = www.display()
    );
    gameday::scenario::load_str("phase-end.yaml", &yaml).unwrap_or_else(|d| panic!("{d}"))
}

fn opts(out: &Path) -> RunOptions {
    RunOptions {
        out_dir: out.to_path_buf(),
        yes: false,
        progress: false,
        metrics_addr: None,
        metrics_addr_is_default: false,
    }
}

/// Regression (issue #13): the fault task slept to `pf.end` on the phase's token while the
/// timeline cancelled that token at the same instant; the unbiased `select!` sometimes took
/// the cancel branch and returned without reverting, so the fault stayed on through the
/// recovery phase (2 of 6 runs) and was only reverted by the run's tail. Twenty runs in a
/// row: the revert comes before the chaos phase's end every time, and never after the
/// recovery phase has begun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_without_duration_is_reverted_at_its_phase_end_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("phase-end-{}", std::process::id());
    for round in 0..20 {
        let loaded = phase_end_scenario(dir.path(), &marker);
        let out = dir.path().join(format!("reports-{round}"));
        let r = runner::run(&loaded, &opts(&out), Abort::new(), Arc::default())
            .await
            .unwrap();
        let what = |k: EventKind, phase: Option<&str>| {
            r.events
                .iter()
                .position(|e| e.kind == k && (phase.is_none() || e.phase.as_deref() == phase))
                .unwrap_or_else(|| panic!("round {round}: no {k:?} event: {:#?}", r.events))
        };
        let revert = r
            .events
            .iter()
            .position(|e| e.kind == EventKind::Revert && e.fault.as_deref() == Some("slow-link"))
            .unwrap_or_else(|| panic!("round {round}: never reverted: {:#?}", r.events));
        let chaos_end = what(EventKind::PhaseEnd, Some("chaos"));
        let recovery_start = what(EventKind::PhaseStart, Some("recovery"));
        assert!(
            revert < chaos_end && chaos_end < recovery_start,
            "round {round}: the fault outlived its phase: {:#?}",
            r.events
        );
        assert_eq!(r.outcome, Outcome::Held, "round {round}");
        assert_eq!(r.pending, 0, "round {round}");
    }
    assert!(pids_with(&marker).is_empty(), "fleet left running");
}

/// A two-replica `python3 -m http.server` fleet and one long phase, as a scenario file for
/// the binary.
fn fleet_scenario(dir: &Path, marker: &str, phase: &str) -> std::path::PathBuf {
    let www = dir.join(marker);
    std::fs::create_dir_all(&www).unwrap();
    let text = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: lifecycle
target:
  local:
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        replicas: 2
        health: /
phases:
  - name: chaos
    duration: {phase}
"#,
        www = www.display()
    );
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn run_cmd(scenario: &Path, out: &Path) -> Command {
    let mut c = cmd();
    c.arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .arg("--no-progress");
    c
}

/// Waits for both replicas' records, then tears a line in the middle of the ledger (a
/// fragment with a newline, so the runner's later records follow it).
fn tear_ledger_once_fleet_is_up(out: &Path) -> std::path::PathBuf {
    let mut ledger = None;
    wait_for(
        "two fleet records in the ledger",
        Duration::from_secs(30),
        || {
            ledger = ledger_in(out);
            ledger.as_ref().is_some_and(|l| {
                std::fs::read_to_string(l)
                    .unwrap_or_default()
                    .matches("\"kind\":\"process\"")
                    .count()
                    >= 2
            })
        },
    );
    let ledger = ledger.unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&ledger)
        .unwrap()
        .write_all(b"{\"op\":\"inject\",\"id\":99,\"fau\n")
        .unwrap();
    ledger
}

/// Regression (issue #13): the run's tail read the ledger with `unwrap_or_default()`, so a
/// ledger it could not read counted as "nothing pending" and the run wrote
/// `run_end {clean: true}` and exited normally. Now: exit 4, a message naming the ledger
/// line, and a ledger that does not claim to be clean.
#[test]
fn a_torn_ledger_line_is_never_read_as_clean() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("torn-run-{}", std::process::id());
    let s = fleet_scenario(dir.path(), &marker, "3s");
    let out = dir.path().join("reports");
    let child = run_cmd(&s, &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ledger = tear_ledger_once_fleet_is_up(&out);
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(
        t.contains(&format!("{}:", ledger.display())) && t.contains("not a ledger record"),
        "the message names the ledger line: {t}"
    );
    assert!(t.contains("gameday recover --ledger"), "{t}");
    let last = std::fs::read_to_string(&ledger).unwrap();
    let last = last.lines().last().unwrap();
    assert!(
        last.contains("run_end") && last.contains("\"clean\":false"),
        "{last}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet left running");
}

/// A torn line and a killed runner: `recover` still reverts what the readable lines name
/// (both replicas, by their ledger records, not only by their environment mark), names the
/// line it could not read, and exits 4 because that line cannot be judged.
#[test]
fn recover_reverts_what_the_readable_lines_of_a_torn_ledger_name() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("torn-recover-{}", std::process::id());
    let s = fleet_scenario(dir.path(), &marker, "60s");
    let out = dir.path().join("reports");
    let mut child = run_cmd(&s, &out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ledger = tear_ledger_once_fleet_is_up(&out);
    child.kill().unwrap();
    child.wait().unwrap();
    // The fragment may be the last line now (a torn last line is skipped by design: it was
    // never fsync'd, so its action never started); damage one in the middle too, after the
    // run's start and before the replicas' records.
    let lines: Vec<String> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut damaged = vec![lines[0].clone(), "{\"op\":\"revert\",\"id\":".to_string()];
    damaged.extend(lines[1..].iter().cloned());
    std::fs::write(&ledger, damaged.join("\n") + "\n").unwrap();
    assert!(
        !pids_with(&marker).is_empty(),
        "the killed runner left its fleet"
    );
    let o = cmd()
        .arg("recover")
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert_eq!(
        t.matches("reverted fleet (process): pid").count(),
        2,
        "both replicas reverted from their records: {t}"
    );
    assert!(
        t.contains(&format!("{}:", ledger.display())) && t.contains("not a ledger record"),
        "{t}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet left running: {t}");
}

/// Regression (issue #13): `recover` looked only under `--out` of the current directory, so
/// run from elsewhere after a SIGKILL it said "nothing to recover" and exited 0 with the
/// fleet still running. Every run now registers its folder in the state directory's index.
#[test]
fn recover_from_another_directory_finds_a_killed_run_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (here, elsewhere) = (dir.path().join("here"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let marker = format!("index-{}", std::process::id());
    let s = fleet_scenario(dir.path(), &marker, "60s");
    let mut child = cmd()
        .current_dir(&here)
        .env("XDG_STATE_HOME", &state)
        .arg("run")
        .arg(&s)
        .args(["--out", "reports", "--no-progress"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = here.join("reports");
    wait_for("the fleet in the ledger", Duration::from_secs(30), || {
        ledger_in(&out).is_some_and(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .matches("\"kind\":\"process\"")
                .count()
                >= 2
        })
    });
    child.kill().unwrap(); // SIGKILL: no cleanup at all
    child.wait().unwrap();
    assert!(
        !pids_with(&marker).is_empty(),
        "the killed runner left its fleet"
    );
    let recover = || {
        cmd()
            .current_dir(&elsewhere)
            .env("XDG_STATE_HOME", &state)
            .arg("recover")
            .output()
            .unwrap()
    };
    let o = recover();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("1 more in the run index"), "{t}");
    assert!(
        t.contains(&ledger_in(&out).unwrap().display().to_string()),
        "names the ledger: {t}"
    );
    assert!(t.contains("reverted fleet (process): pid"), "{t}");
    assert!(pids_with(&marker).is_empty(), "fleet left running: {t}");
    let again = recover();
    assert!(
        text(&again).contains("nothing to recover"),
        "{}",
        text(&again)
    );
}

/// Regression (issue #13): `process_kill` compared only the kills about to be made with the
/// cap, then picked among the running replicas, so `every:` took a second replica while the
/// first was still restarting: both of two replicas down "within" a cap of one. Here the
/// killed replica stays down for its 5 s restart backoff; the kills every 400 ms after the
/// first are refused, naming the replica already down.
#[test]
fn a_kill_is_refused_when_a_replica_already_down_fills_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("cap-down-{}", std::process::id());
    let www = dir.path().join(&marker);
    std::fs::create_dir_all(&www).unwrap();
    let yaml = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: cap-down
target:
  local:
    max_percent: 50
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        replicas: 2
        health: /
        backoff: 5s
phases:
  - name: chaos
    duration: 1500ms
    faults:
      - name: kill-often
        every: 400ms
        process_kill: {{ service: web }}
"#,
        www = www.display()
    );
    let s = dir.path().join("cap.yaml");
    std::fs::write(&s, yaml).unwrap();
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out).output().unwrap();
    let t = text(&o);
    let ledger = std::fs::read_to_string(ledger_in(&out).unwrap()).unwrap();
    let kills = ledger
        .lines()
        .filter(|l| l.contains("\"kind\":\"process_kill\""))
        .count();
    assert_eq!(kills, 1, "only the first kill fits the cap: {ledger}\n{t}");
    assert!(
        t.contains("would leave 2 of 2 replicas of `web` down (1 already down or unready)"),
        "{t}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet left running");
}

/// Regression (issue #13): the sandbox's `spot_interruption` counted only the replicas on the
/// instances it picked, so a second interruption while the first instance's replica was
/// still down took both of two replicas down "within" a cap of one. Here the first
/// interruption ends web-0 after a 200 ms notice (the supervisor holds it down for 2 s, as a
/// replacement instance boots); the second, on the other instance 600 ms later, is refused
/// and says why. (The instances are named: an interruption of the instance whose replica is
/// already down takes nothing more down, and is rightly allowed.)
#[test]
fn a_spot_interruption_is_refused_when_a_replica_already_down_fills_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("spot-cap-{}", std::process::id());
    let www = dir.path().join(&marker);
    std::fs::create_dir_all(&www).unwrap();
    let yaml = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: spot-cap
target:
  local:
    max_percent: 50
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        replicas: 2
        health: /
        backoff: 5s
phases:
  - name: chaos
    duration: 1500ms
    faults:
      - name: reclaim-first
        spot_interruption: {{ service: web, instances: [web-i0], notice: 200ms }}
      - name: reclaim-second
        at: 800ms
        spot_interruption: {{ service: web, instances: [web-i1], notice: 200ms }}
"#,
        www = www.display()
    );
    let s = dir.path().join("spot-cap.yaml");
    std::fs::write(&s, yaml).unwrap();
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out).output().unwrap();
    let t = text(&o);
    let ledger = std::fs::read_to_string(ledger_in(&out).unwrap()).unwrap();
    assert_eq!(
        ledger.matches("\"kind\":\"spot_interruption\"").count(),
        1,
        "only the first interruption fits the cap: {ledger}\n{t}"
    );
    assert!(
        ledger.contains("\"fault\":\"reclaim-first\""),
        "{ledger}\n{t}"
    );
    assert!(
        t.contains("would take 1 of 2 replicas of `web` (1 instance(s)), with 1 already down or not ready: 2 out at once"),
        "{t}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet left running");
}

/// A revert that fails twice and then succeeds, through a whole run of the real binary: the
/// sandbox's own fail point (`GAMEDAY_FAILPOINTS`, debug builds only) makes the first two
/// reverts of the `network` fault fail as an unreachable target would. The fault's task
/// retries with backoff, the third attempt reverts it at its phase's end, the run holds and
/// exits 0 with nothing pending, and the journal says at which attempt.
#[test]
fn a_revert_that_fails_twice_then_succeeds_is_retried_within_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("retry-revert-{}", std::process::id());
    let loaded_yaml = {
        let www = dir.path().join(&marker);
        std::fs::create_dir_all(&www).unwrap();
        format!(
            r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: retried-revert
target:
  local:
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        port: {port}
        health: /
phases:
  - name: chaos
    duration: 1s
    faults:
      - name: slow-link
        network: {{ service: web, latency: 200ms }}
  - name: recovery
    role: recovery
    duration: 2s
"#,
            www = www.display(),
            port = free_port()
        )
    };
    let s = dir.path().join("retried.yaml");
    std::fs::write(&s, loaded_yaml).unwrap();
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out)
        .env(gameday::failpoints::ENV, "local-revert=2*return(network)")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let ledger_path = ledger_in(&out).unwrap();
    let ledger = std::fs::read_to_string(&ledger_path).unwrap();
    let reverts: Vec<&str> = ledger
        .lines()
        .filter(|l| l.contains("\"op\":\"revert\""))
        .collect();
    assert!(
        reverts.iter().all(|l| l.contains("\"ok\":true")),
        "every revert record is a success: {ledger}"
    );
    assert!(ledger.contains("\"clean\":true"), "{ledger}");
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ledger_path.with_file_name("journal.json")).unwrap(),
    )
    .unwrap();
    let events = journal["events"].as_array().unwrap();
    let pos = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("{events:#?}"))
    };
    let revert = pos(&|e| e["message"] == "reverted `slow-link` at attempt 3");
    let recovery = pos(&|e| e["kind"] == "phase_start" && e["phase"] == "recovery");
    assert!(
        revert < recovery,
        "reverted before the recovery phase: {events:#?}"
    );
    assert!(pids_with(&marker).is_empty(), "fleet left running");
}

/// R-3 and R-4 from what happened, not from the scenario alone (issue #14): participants from
/// the scenario and from `--participant`, and playbook steps confirmed from another shell
/// while the run goes (by number and by part of their text), each with who and when, in the
/// journal and the report; an unknown step is refused with the list of steps, and a step
/// left unconfirmed shows as such.
#[test]
fn playbook_steps_confirmed_during_the_run_and_participants_are_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("playbook-{}", std::process::id());
    let www = dir.path().join(&marker);
    std::fs::create_dir_all(&www).unwrap();
    let yaml = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: dr-drill
target:
  local:
    services:
      - name: web
        command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, "{www}", "$PORT"]
        health: /
participants: [alice]
playbook:
  name: web failover
  rto: 30s
  steps:
    - step: Page the on-call
      owner: sre
    - step: Fail over to the standby
      owner: sre
    - step: Tell the customers
phases:
  - name: drill
    duration: 6s
"#,
        www = www.display()
    );
    let s = dir.path().join("drill.yaml");
    std::fs::write(&s, yaml).unwrap();
    let out = dir.path().join("reports");
    let state = dir.path().join("state"); // one run index for the run and the confirmations
    let child = run_cmd(&s, &out)
        .env("XDG_STATE_HOME", &state)
        .args(["--participant", "bob", "--participant", "alice"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the run folder", Duration::from_secs(30), || {
        ledger_in(&out).is_some_and(|l| l.with_file_name("playbook.json").is_file())
    });
    let run_dir = ledger_in(&out).unwrap().parent().unwrap().to_path_buf();
    let run_id = run_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .to_string();
    let confirm = |run: &str, step: &str, by: &str| {
        cmd()
            .current_dir(dir.path())
            .env("XDG_STATE_HOME", &state)
            .args(["playbook", "confirm", run, step, "--by", by])
            .output()
            .unwrap()
    };
    let o = confirm(run_dir.to_str().unwrap(), "1", "alice");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("confirmed step 1 of web failover (`Page the on-call`) by alice"),
        "{}",
        text(&o)
    );
    // By the run's id (found through the run index) and part of the step's text.
    let o = confirm(&run_id, "fail over", "bob");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = confirm(&run_id, "7", "bob");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("step `7` is no step number"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("  3. Tell the customers"), "{}", text(&o));
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("gameday playbook confirm "),
        "{}",
        text(&o)
    );
    // After the end, a confirmation would never reach the report: refused.
    let late = confirm(run_dir.to_str().unwrap(), "3", "carol");
    assert_eq!(late.status.code(), Some(2), "{}", text(&late));
    assert!(text(&late).contains("has ended"), "{}", text(&late));

    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("journal.json")).unwrap())
            .unwrap();
    assert_eq!(
        j["run"]["participants"],
        serde_json::json!(["alice", "bob"])
    );
    let steps = j["playbook"]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["confirmed_by"], "alice");
    assert_eq!(steps[1]["confirmed_by"], "bob");
    assert!(steps[1]["confirmed_at"].is_string(), "{steps:#?}");
    assert!(steps[2]["confirmed_by"].is_null(), "{steps:#?}");
    let md = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(md.contains("alice, bob"), "{md}");
    assert!(md.contains("not confirmed"), "{md}");
    assert!(pids_with(&marker).is_empty(), "fleet left running");
}
