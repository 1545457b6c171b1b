//! The life of one injection in the engine (issue #13): a fault ends with its phase, every
//! time; a ledger that cannot be read is never "clean"; reverts are retried.

use std::path::Path;
use std::sync::Arc;

use gameday::engine::events::EventKind;
use gameday::engine::runner::{self, Abort, Outcome, RunOptions};

use crate::support::{free_port, pids_with};

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
