//! `gameday recover`: undo what a killed run left behind, from its ledger alone.
//!
//! Every injection without a successful revert is reverted, newest first, through the same
//! `Target::revert` the runner uses; each outcome is appended to the same ledger, so a second
//! `recover` finds nothing to do. A ledger whose runner is still alive is left alone unless
//! forced: reverting under a live run would fight it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::targets::Targets;
use crate::ledger::{self, now_rfc3339, Ledger, Record, LEDGER_ENV};
use crate::targets::local::fleet::{process_alive, process_start_time, stop_process, ProcessUndo};

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
    /// Lines that are not ledger records: what they named, if anything, was not reverted.
    pub unreadable: Vec<ledger::Unreadable>,
}

/// Live processes marked with this ledger ([`LEDGER_ENV`]), with their process groups.
fn marked_processes(ledger: &Path) -> Vec<ProcessUndo> {
    let Ok(canon) = std::fs::canonicalize(ledger) else {
        return vec![];
    };
    let mark = format!("{LEDGER_ENV}={}", canon.display()).into_bytes();
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark.as_slice()))
        })
        .map(|pid| ProcessUndo {
            pid,
            // SAFETY: getpgid(2) only reads the process table.
            pgid: match unsafe { libc::getpgid(pid as i32) } {
                g if g > 0 => g as u32,
                _ => pid,
            },
            start_time: process_start_time(pid),
        })
        .filter(process_alive)
        .collect()
}

/// Stops every live fleet process of this ledger's run, named by its records or by its
/// [`LEDGER_ENV`] mark, without writing to the ledger (the runner may still hold it; a later
/// `recover` finds them gone, which is a successful revert). Returns how many were
/// signalled. For a forced exit: replicas live in process groups of their own, so exiting
/// alone would leave them running.
pub async fn stop_fleet(ledger: &Path) -> usize {
    let mut procs: Vec<ProcessUndo> = ledger::read_lenient(ledger)
        .map(|(r, _)| ledger::pending(&r))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.kind == "process")
        .filter_map(|p| serde_json::from_value(p.prepared.undo).ok())
        .collect();
    procs.extend(marked_processes(ledger));
    procs.retain(process_alive);
    procs.sort_by_key(|p| p.pid);
    procs.dedup_by_key(|p| p.pid);
    let n = procs.len();
    // In parallel, with a short grace: the person asked to exit now.
    let mut stops = tokio::task::JoinSet::new();
    for p in procs {
        stops.spawn(async move { stop_process(&p, Duration::from_millis(500)).await });
    }
    while stops.join_next().await.is_some() {}
    n
}

/// Whether a ledger may still need `recover`: it has pending injections, its run never
/// recorded its end (a killed runner may have left an unrecorded process), or it cannot be
/// read (never assumed clean).
pub fn needs_recover(ledger: &Path) -> bool {
    ledger::read(ledger)
        .map(|r| {
            !ledger::pending(&r).is_empty() || !r.iter().any(|x| matches!(x, Record::RunEnd { .. }))
        })
        .unwrap_or(true)
}

/// Ledgers under `out` (one level of run folders) that may still need `recover`.
pub fn find_pending(out: &Path) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(out) else {
        return vec![];
    };
    let mut v: Vec<PathBuf> = dirs
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("ledger.jsonl"))
        .filter(|p| p.is_file())
        .filter(|p| needs_recover(p))
        .collect();
    v.sort();
    v
}

/// Ledgers of the runs in the state directory's index ([`super::run_index`]) that may still
/// need `recover`; entries of finished runs are removed on the way.
pub fn find_pending_indexed() -> Vec<PathBuf> {
    super::run_index::ledgers()
        .into_iter()
        .filter(|l| {
            let needs = needs_recover(l);
            if !needs {
                if let Some(dir) = l.parent() {
                    super::run_index::forget_dir(dir);
                }
            }
            needs
        })
        .collect()
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
    // Lenient: a damaged line must not stop the undo of what the other lines name.
    let (records, unreadable) = ledger::read_lenient(path)?;
    let mut out = Recovered {
        ledger: path.to_path_buf(),
        reverted: vec![],
        failed: vec![],
        skipped_live: false,
        unreadable,
    };
    if !force && runner_alive(&records) {
        out.skipped_live = true;
        return Ok(out);
    }
    let pending = ledger::pending(&records);
    let ended = records.iter().any(|r| matches!(r, Record::RunEnd { .. }));
    let strays = if ended {
        vec![]
    } else {
        marked_processes(path)
    };
    // Nothing to undo: write nothing either (the disk under it may still be full).
    if pending.is_empty() && strays.is_empty() {
        return Ok(out);
    }
    let configs = records
        .iter()
        .find_map(|r| match r {
            Record::RunStart { targets, .. } => Some(targets.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let targets = Targets::from_ledger(&configs).await?;
    let writer = Ledger::open_append(path)?;
    for p in pending.iter().rev() {
        let what = format!(
            "{} ({}): {}",
            p.fault,
            p.kind,
            p.prepared.targets.join(", ")
        );
        let result = match targets.get(&p.target) {
            Some(t) => {
                super::revert::with_retries(t, &p.kind, &p.prepared.undo, super::revert::DEFAULT)
                    .await
                    .result
            }
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
    // Then any process of this run the ledger does not name (see `LEDGER_ENV`).
    for stray in strays.iter().chain(&marked_processes(path)) {
        if !process_alive(stray) {
            continue; // listed twice, or gone meanwhile
        }
        stop_process(stray, Duration::from_secs(5)).await;
        out.reverted.push(format!(
            "fleet (unrecorded process): pid {} (group {})",
            stray.pid, stray.pgid
        ));
    }
    writer.append(&Record::RunEnd {
        clean: out.failed.is_empty() && out.unreadable.is_empty(),
        at: now_rfc3339(),
    })?;
    Ok(out)
}
