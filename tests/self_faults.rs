//! Faults on gameday itself: SIGKILL at random moments (then `gameday recover`), a full disk
//! under the ledger and report folder, targets that hang, a service port already taken.
//! Each ends with nothing left injected or running, and a message that says what to do.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use gameday::ledger::{self, Ledger, Record};
use rand::{Rng, SeedableRng};

use crate::support::harden::{fleet_scenario, ledgers, wait_child, wait_for, Tmpfs};
use crate::support::{cmd, gameday, pids_with, text};

/// Asserts that no ledger under `out` has an injection without a successful revert.
fn nothing_pending(out: &Path) {
    for l in ledgers(out) {
        let records = ledger::read(&l).unwrap_or_else(|e| panic!("{}: {e}", l.display()));
        let p = ledger::pending(&records);
        assert!(p.is_empty(), "{}: still pending: {p:?}", l.display());
    }
}

fn run_cmd(scenario: &Path, out: &Path) -> Command {
    let mut c = cmd();
    c.args(["run", scenario.to_str().unwrap(), "--no-progress", "--out"])
        .arg(out);
    c
}

/// SIGKILL the runner at seeded random moments (before the fleet is up, during startup,
/// between kills, mid-kill), then `gameday recover`: no fleet process and no pending ledger
/// entry may remain, and a second `recover` has nothing to do. `GAMEDAY_SIGKILL_SEED` and
/// `GAMEDAY_SIGKILL_ROUNDS` widen the search.
#[test]
fn sigkill_at_random_moments_then_recover_leaves_nothing() {
    let seed: u64 = std::env::var("GAMEDAY_SIGKILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_121);
    let rounds: usize = std::env::var("GAMEDAY_SIGKILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    for round in 0..rounds {
        let delay = Duration::from_millis(rng.gen_range(0..3_500));
        let marker = format!("sk{round}-{}", std::process::id());
        let rd = dir.path().join(format!("round{round}"));
        let s = fleet_scenario(
            &rd,
            &marker,
            "",
            "",
            "  - name: chaos\n    duration: 60s\n    faults:\n      - name: kill-one\n        at: 500ms\n        every: 700ms\n        process_kill: { service: web }\n",
        );
        let out = rd.join("reports");
        let mut child = run_cmd(&s, &out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL: no handler, no revert
        child.wait().unwrap();
        let ctx = format!("round {round} (seed {seed}), killed after {delay:?}");
        let o = gameday(&["recover", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{ctx}: {}", text(&o));
        let end = std::time::Instant::now() + Duration::from_secs(15);
        while !pids_with(&marker).is_empty() && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        let left = pids_with(&marker);
        if !left.is_empty() {
            let ledger: String = ledgers(&out)
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            for p in &left {
                unsafe { libc::kill(*p as i32, libc::SIGKILL) };
            }
            panic!("{ctx}: processes {left:?} survived recover; ledger:\n{ledger}");
        }
        nothing_pending(&out);
        let o = gameday(&["recover", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{ctx}: {}", text(&o));
        assert!(
            text(&o).contains("nothing to recover"),
            "{ctx}: {}",
            text(&o)
        );
    }
}

/// Too little free space under the report folder for the run: it stops before starting
/// anything, exits 5 and says how much is free and how much the run needs. A 4 MiB tmpfs
/// (root only; skipped otherwise, CI runs as root) is under the estimate for any run.
#[test]
fn too_little_free_space_under_the_report_folder_stops_the_run_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("small-{}", std::process::id());
    let s = full_disk_scenario(dir.path(), &marker);
    let out = dir.path().join("reports");
    let Some(tmpfs) = Tmpfs::mount(&out, "4m") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must mount the tmpfs"
        );
        eprintln!("SKIPPED too_little_free_space...: cannot mount a tmpfs (needs root)");
        return;
    };
    let o = run_cmd(&s, &out).output().unwrap();
    let t = text(&o);
    assert!(t.contains("only 4.0 MiB free under"), "{t}");
    assert!(t.contains("writes up to about 8.1 MiB"), "{t}");
    refused_before_start(&o, &marker, &out);
    assert!(
        std::fs::read_dir(&out).unwrap().next().is_none(),
        "no run folder is made"
    );
    drop(tmpfs);
}

/// The report folder cannot be written at all (a 0-byte file-size limit on the runner, which
/// fails its writes with EFBIG as a full disk fails them with ENOSPC): the ledger cannot be
/// written, so the run stops before starting anything, exits 5 and says what to do.
#[test]
fn an_unwritable_report_folder_stops_the_run_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("efbig-{}", std::process::id());
    let s = full_disk_scenario(dir.path(), &marker);
    let out = dir.path().join("reports");
    let mut cmd = run_cmd(&s, &out);
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let t = text(&o);
    assert!(t.contains("File too large"), "{t}");
    assert!(t.contains("ledger"), "{t}");
    refused_before_start(&o, &marker, &out);
}

fn full_disk_scenario(dir: &Path, marker: &str) -> PathBuf {
    fleet_scenario(
        dir,
        marker,
        "",
        "",
        "  - name: chaos\n    duration: 5s\n    faults:\n      - name: kill-one\n        at: 1s\n        process_kill: { service: web }\n",
    )
}

/// Exit 5 with the advice to free space, no fleet process, nothing for `recover`.
fn refused_before_start(o: &std::process::Output, marker: &str, out: &Path) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(
        t.contains("nothing was started or injected; free space"),
        "{t}"
    );
    assert!(pids_with(marker).is_empty(), "a fleet process started");
    let o = gameday(&["recover", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// The disk fills up while the ledger is being appended to: every failed append is reported
/// and leaves the file readable (no torn record that the next one would be glued onto), and
/// a later record still lands once it fits.
#[test]
fn a_ledger_append_on_a_full_disk_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let Some(t) = Tmpfs::mount(&dir.path().join("disk"), "16k") else {
        eprintln!("SKIPPED a_ledger_append_on_a_full_disk_fails_cleanly: cannot mount a tmpfs (needs root)");
        return;
    };
    let path = t.path.join("ledger.jsonl");
    let l = Ledger::create(&path).unwrap();
    let prepared = gameday::targets::Prepared {
        targets: vec!["x".repeat(300)],
        undo: serde_json::json!({ "pid": 1 }),
        irreversible: false,
    };
    let mut ok = 0;
    let mut err = None;
    for _ in 0..1000 {
        match l.record_inject(
            "f",
            "process_kill",
            "local",
            &prepared,
            std::time::SystemTime::now(),
        ) {
            Ok(_) => ok += 1,
            Err(e) => {
                err = Some(e.to_string());
                break;
            }
        }
    }
    let err = err.expect("a 16k disk fills up");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("ledger.jsonl"), "{err}");
    let records = ledger::read(&path).unwrap();
    assert_eq!(records.len(), ok, "a failed append left a partial record");
    // A short record still fits in what the failed one would have used.
    l.append(&Record::RunEnd {
        clean: false,
        at: "now".into(),
    })
    .unwrap();
    let records = ledger::read(&path).unwrap();
    assert_eq!(records.len(), ok + 1);
    assert!(matches!(records.last(), Some(Record::RunEnd { .. })));
    drop(l);
    drop(t);
}

/// A service that accepts connections and never answers its health check: the run gives up
/// after `startup_timeout`, says which replicas and where their logs are, exits 5, and
/// leaves no process.
#[test]
fn a_service_that_hangs_at_startup_times_out_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("hang-{}", std::process::id());
    let code = "import os,socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',int(os.environ['PORT'])))\ns.listen(64)\nheld=[]\nwhile True:\n    held.append(s.accept())\n";
    let s = dir.path().join("hang.yaml");
    std::fs::write(
        &s,
        format!(
            r#"apiVersion: gameday/v1
kind: Gameday
metadata: {{ name: hang }}
target:
  local:
    startup_timeout: 3s
    services:
      - name: stuck
        command: [python3, -c, {code:?}, {marker}]
        replicas: 2
        health: /healthz
phases:
  - name: chaos
    duration: 5s
    faults:
      - process_kill: {{ service: stuck }}
"#
        ),
    )
    .unwrap();
    let out = dir.path().join("reports");
    let mut child = run_cmd(&s, &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_child(&mut child, Duration::from_secs(60));
    let mut t = String::new();
    child.stdout.take().unwrap().read_to_string(&mut t).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut t).unwrap();
    assert_eq!(status, Some(5), "{t}");
    assert!(t.contains("TARGET UNREACHABLE"), "{t}");
    assert!(t.contains("stuck-0"), "{t}");
    assert!(t.contains("not ready after 3s"), "{t}");
    assert!(t.contains("see their logs in"), "{t}");
    wait_for(
        "the stuck replicas to be gone",
        Duration::from_secs(10),
        || pids_with(&marker).is_empty(),
    );
    nothing_pending(&out);
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ledgers(&out)[0].with_file_name("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run["outcome"], "unreachable");
    assert!(run["faults"].as_array().unwrap().is_empty() || run["faults"][0]["injections"] == 0);
}

/// A load target that accepts connections and never answers: requests time out, the run
/// still ends when its timeline does (bounded by the test's wait), and nothing is left.
#[test]
fn a_load_target_that_hangs_does_not_hang_the_run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c); // accept, never read or answer
            if held.len() > 1000 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(120));
    });
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("hangload-{}", std::process::id());
    let s = fleet_scenario(
        dir.path(),
        &marker,
        "",
        &format!("load:\n  url: http://127.0.0.1:{port}/\n  rate: 20\n  connections: 4\n  timeout: 500ms\n"),
        "  - name: chaos\n    duration: 3s\n    faults:\n      - name: kill-one\n        at: 1s\n        process_kill: { service: web }\n",
    );
    let out = dir.path().join("reports");
    let mut child = run_cmd(&s, &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_child(&mut child, Duration::from_secs(90));
    let mut t = String::new();
    child.stdout.take().unwrap().read_to_string(&mut t).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut t).unwrap();
    // No SLO: the verdict is "held" however the load fared; what matters is that it ended.
    assert_eq!(status, Some(0), "{t}");
    assert!(pids_with(&marker).is_empty(), "fleet processes left behind");
    nothing_pending(&out);
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ledgers(&out)[0].with_file_name("run.json")).unwrap(),
    )
    .unwrap();
    let errors: u64 = run["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["errors"]["request_timeout"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        errors > 0,
        "the hung requests were not counted as timeouts: {run}"
    );
}

/// A service address already bound by another program (this test): the run stops before
/// anything starts, exits 5, names the port and the program holding it, and says what to do.
#[test]
fn a_service_port_already_taken_stops_the_run_before_anything_starts() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("port-{}", std::process::id());
    let s = fleet_scenario(
        dir.path(),
        &marker,
        &format!("        port: {port}\n"),
        "",
        "  - name: chaos\n    duration: 5s\n    faults:\n      - name: kill-one\n        at: 1s\n        process_kill: { service: web }\n",
    );
    let out = dir.path().join("reports");
    let o = run_cmd(&s, &out).output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(
        t.contains(&format!(
            "port {port} on 127.0.0.1 is already in use by pid {}",
            std::process::id()
        )),
        "{t}"
    );
    assert!(
        t.contains("stop that program or choose another `port`"),
        "{t}"
    );
    assert!(pids_with(&marker).is_empty(), "a fleet process started");
    nothing_pending(&out);
    drop(holder);
}

/// Regression for the write-ahead gap of the fleet: a replica is spawned before it can be
/// recorded (its pid comes from the spawn), so a runner killed in between leaves a process the
/// ledger does not name. Every replica carries `GAMEDAY_LEDGER=<its run's ledger>`, and
/// `recover` stops such strays. Here the stray is planted by hand: a process with the mark,
/// under a ledger whose (dead) runner never recorded its end.
#[test]
fn recover_stops_a_fleet_process_the_ledger_does_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports");
    let run = out.join("2026-01-01-stray-00000001");
    std::fs::create_dir_all(&run).unwrap();
    let path = run.join("ledger.jsonl");
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let l = Ledger::create(&path).unwrap();
    l.append(&Record::RunStart {
        run_id: "00000001".into(),
        scenario: "stray".into(),
        pid: dead_pid,
        targets: [("local".to_string(), serde_json::json!({ "dir": run }))].into(),
        at: ledger::now_rfc3339(),
    })
    .unwrap();
    drop(l);
    let marker = format!("stray-{}", std::process::id());
    let mut stray = Command::new("sh")
        .args(["-c", "sleep 120; : $0", &marker])
        .env(
            gameday::ledger::LEDGER_ENV,
            std::fs::canonicalize(&path).unwrap(),
        )
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for("the stray to start", Duration::from_secs(5), || {
        !pids_with(&marker).is_empty()
    });
    let o = gameday(&["recover", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("unrecorded process): pid {}", stray.id())),
        "{}",
        text(&o)
    );
    let status = wait_child(&mut stray, Duration::from_secs(10));
    assert_eq!(status, None, "the stray ended by a signal");
    // The run is now closed: a second `recover` has nothing to do.
    let o = gameday(&["recover", "--out", out.to_str().unwrap()]);
    assert!(text(&o).contains("nothing to recover"), "{}", text(&o));
}

/// The disk under the run folder fills up mid-run, under a repeating fault: the first
/// injection whose ledger record cannot be written is not injected, the run aborts and
/// reverts (exit 3) and says why, no fleet process is left, and once space is freed
/// `recover` closes the ledger.
#[test]
fn a_disk_that_fills_mid_run_aborts_before_the_next_injection() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("fillmid-{}", std::process::id());
    // A quiet server: `http.server` logs every health probe, and a write error on the full
    // disk would kill it before the run gets to its fault.
    let code = "import http.server,os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200)\n        self.end_headers()\n    def log_message(self,*a):\n        pass\nhttp.server.ThreadingHTTPServer(('127.0.0.1',int(os.environ['PORT'])),H).serve_forever()\n";
    let s = dir.path().join("fill.yaml");
    std::fs::write(
        &s,
        format!(
            r#"apiVersion: gameday/v1
kind: Gameday
metadata: {{ name: fill }}
target:
  local:
    services:
      - name: web
        command: [python3, -c, {code:?}, {marker}]
        replicas: 2
        health: /
phases:
  - name: chaos
    duration: 30s
    faults:
      - name: kill-one
        at: 1s
        every: 300ms
        process_kill: {{ service: web }}
"#
        ),
    )
    .unwrap();
    let out = dir.path().join("reports");
    // Above the free-space estimate for this short run (8 MiB and a bit), then filled.
    let Some(disk) = Tmpfs::mount(&out, "12m") else {
        eprintln!("SKIPPED a_disk_that_fills_mid_run_aborts_before_the_next_injection: cannot mount a tmpfs (needs root)");
        return;
    };
    let mut child = run_cmd(&s, &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the fleet in the ledger", Duration::from_secs(30), || {
        ledgers(&out).first().is_some_and(|l| {
            std::fs::read_to_string(l).is_ok_and(|t| t.matches("\"kind\":\"process\"").count() >= 2)
        })
    });
    assert!(disk.fill() > 0);
    let status = wait_child(&mut child, Duration::from_secs(60));
    let mut t = String::new();
    child.stdout.take().unwrap().read_to_string(&mut t).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut t).unwrap();
    // 3 when the stopped fleet's records still fitted; 4 when the full disk also kept the
    // runner from recording that it stopped the fleet: then it must send the person to
    // `recover`, which below closes those records. Both leave nothing running.
    match status {
        Some(3) => assert!(t.contains("ABORTED (the ledger cannot be written"), "{t}"),
        Some(4) => assert!(t.contains("run `gameday recover --ledger"), "{t}"),
        other => panic!("exit {other:?}, expected 3 or 4\n{t}"),
    }
    assert!(t.contains("No space left on device"), "{t}");
    assert!(pids_with(&marker).is_empty(), "fleet processes left behind");
    // The ledger file's last page still had room for a few records; the first one that did
    // not fit stopped the run, and was not injected.
    assert!(t.contains("fault `kill-one` not injected"), "{t}");
    // Space again: `recover` closes what the full disk kept the runner from recording.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    let o = gameday(&["recover", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    nothing_pending(&out);
    drop(disk);
}
