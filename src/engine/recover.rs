//! `gameday recover`: undo what a killed run left behind, from its ledger alone.
//!
//! Every injection without a successful revert is reverted, newest first, through the same
//! `Target::revert` the runner uses; each outcome is appended to the same ledger, so a second
//! `recover` finds nothing to do. A ledger whose runner is still alive is left alone unless
//! forced: reverting under a live run would fight it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ledger::{self, now_rfc3339, Ledger, Record};
use crate::targets::registry::Targets;

/// What `recover` did to one ledger.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recovered {
    /// The ledger.
    pub ledger: PathBuf,
    /// Reverted, as `fault (kind): targets`.
    pub reverted: Vec<String>,
    /// Failed, with why.
    pub failed: Vec<String>,
    /// Skipped because its runner still runs.
    pub skipped_live: bool,
}

/// Ledgers under `out` (one level of run folders) that still have pending injections.
pub fn find_pending(out: &Path) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(out) else {
        return vec![];
    };
    let mut v: Vec<PathBuf> = dirs
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("ledger.jsonl"))
        .filter(|p| p.is_file())
        .filter(|p| {
            ledger::read(p)
                .map(|r| !ledger::pending(&r).is_empty())
                .unwrap_or(true)
        })
        .collect();
    v.sort();
    v
}

fn runner_alive(records: &[Record]) -> bool {
    let pid = records.iter().find_map(|r| match r {
        Record::RunStart { pid, .. } => Some(*pid),
        _ => None,
    });
    let ended = records.iter().any(|r| matches!(r, Record::RunEnd { .. }));
    match pid {
        Some(pid) if !ended && pid != std::process::id() => {
            // kill(pid, 0) probes existence; a zombie would still answer, but a zombie
            // runner is dead for our purpose and its parent will reap it.
            let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = st.rfind(')').and_then(|i| st.get(i + 2..i + 3)) == Some("Z");
            !st.is_empty()
                && !zombie
                && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.contains("gameday"))
        }
        _ => false,
    }
}

/// Recovers one ledger.
pub async fn recover_ledger(path: &Path, force: bool) -> anyhow::Result<Recovered> {
    let records = ledger::read(path)?;
    let mut out = Recovered {
        ledger: path.to_path_buf(),
        reverted: vec![],
        failed: vec![],
        skipped_live: false,
    };
    if !force && runner_alive(&records) {
        out.skipped_live = true;
        return Ok(out);
    }
    let pending = ledger::pending(&records);
    if pending.is_empty() {
        return Ok(out);
    }
    let configs = records
        .iter()
        .find_map(|r| match r {
            Record::RunStart { targets, .. } => Some(targets.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let targets = Targets::from_ledger(&configs)?;
    let writer = Ledger::open_append(path)?;
    for p in pending.iter().rev() {
        let what = format!(
            "{} ({}): {}",
            p.fault,
            p.kind,
            p.prepared.targets.join(", ")
        );
        let result = match targets.get(&p.target) {
            Some(t) => match tokio::time::timeout(
                Duration::from_secs(60),
                t.revert(&p.kind, &p.prepared.undo),
            )
            .await
            {
                Ok(r) => r.map_err(|e| format!("{e:#}")),
                Err(_) => Err("revert timed out after 60s".into()),
            },
            None => Err(format!(
                "target `{}` is not in the ledger's run record",
                p.target
            )),
        };
        writer.record_revert(p.id, result.clone())?;
        match result {
            Ok(()) => out.reverted.push(what),
            Err(e) => out.failed.push(format!("{what}: {e}")),
        }
    }
    writer.append(&Record::RunEnd {
        clean: out.failed.is_empty(),
        at: now_rfc3339(),
    })?;
    Ok(out)
}
