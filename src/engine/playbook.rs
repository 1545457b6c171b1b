//! Playbook steps confirmed during a run (manifesto R-4): a DR drill's time to recover is
//! only as good as the record of who did what, when.
//!
//! At its start a run writes its playbook's steps to `playbook.json` in its folder;
//! `gameday playbook confirm RUN STEP` (from any shell, while the run goes) appends one
//! confirmation per line to `playbook-confirmations.jsonl` there, fsync'd; the report maps
//! them onto the steps. Files, not a socket: a confirmation survives the runner crashing,
//! and needs nothing listening.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ledger::{self, Record};
use crate::scenario::model::Playbook;

/// The steps of the run's playbook, in the run folder.
pub const STEPS_FILE: &str = "playbook.json";
/// The confirmations, one JSON object per line, in the run folder.
pub const CONFIRMATIONS_FILE: &str = "playbook-confirmations.jsonl";

/// What the run folder says of its playbook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Steps {
    /// The playbook's name.
    pub name: String,
    /// The steps' texts, in order.
    pub steps: Vec<String>,
}

/// One step confirmed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Confirmation {
    /// 1-based step number.
    pub step: usize,
    /// Who confirmed it.
    pub by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Why a confirmation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// No such run.
    #[error("no run `{0}`: give a run folder, or the id of a run still going (its folder is printed at its start)")]
    NoRun(String),
    /// The run has no playbook.
    #[error("run {0} rehearses no playbook (the scenario has no `playbook:`)")]
    NoPlaybook(PathBuf),
    /// The run is over: its report is written.
    #[error("run {0} has ended and its report is written; confirm steps while the run goes")]
    Ended(PathBuf),
    /// The step matches none, or several.
    #[error("step `{asked}` {why}; the steps are:\n{list}")]
    Step {
        /// What was asked.
        asked: String,
        /// Why it does not fit.
        why: &'static str,
        /// The steps, numbered.
        list: String,
    },
    /// The folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConfirmError + '_ {
    move |source| ConfirmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the playbook's steps into a new run's folder.
pub fn write_steps(run_dir: &Path, playbook: &Playbook) -> std::io::Result<()> {
    let steps = Steps {
        name: playbook.name.clone(),
        steps: playbook.steps.iter().map(|s| s.step.clone()).collect(),
    };
    let path = run_dir.join(STEPS_FILE);
    std::fs::write(&path, serde_json::to_vec_pretty(&steps)?)
}

/// A run folder from what a person typed: a folder, or the id of an unfinished run.
pub fn run_dir(run: &str) -> Result<PathBuf, ConfirmError> {
    let p = PathBuf::from(run);
    if p.join("ledger.jsonl").is_file() {
        return Ok(p);
    }
    super::run_index::dir_of(run)
        .filter(|d| d.join("ledger.jsonl").is_file())
        .ok_or_else(|| ConfirmError::NoRun(run.to_string()))
}

/// Which step `asked` names: its 1-based number, or a case-insensitive part of exactly one
/// step's text.
pub fn pick_step(steps: &[String], asked: &str) -> Result<usize, ConfirmError> {
    let list = steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  {}. {s}", i + 1))
        .collect::<Vec<_>>()
        .join("\n");
    let err = |why| ConfirmError::Step {
        asked: asked.to_string(),
        why,
        list: list.clone(),
    };
    if let Ok(n) = asked.trim().parse::<usize>() {
        return if (1..=steps.len()).contains(&n) {
            Ok(n)
        } else {
            Err(err("is no step number"))
        };
    }
    let needle = asked.trim().to_lowercase();
    let hits: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !needle.is_empty() && s.to_lowercase().contains(&needle))
        .map(|(i, _)| i + 1)
        .collect();
    match hits[..] {
        [n] => Ok(n),
        [] => Err(err("matches no step")),
        _ => Err(err("matches several steps: give its number")),
    }
}

/// Confirms one step of a running run's playbook.
pub fn confirm(
    run_dir: &Path,
    asked: &str,
    by: &str,
) -> Result<(Steps, Confirmation), ConfirmError> {
    let steps_path = run_dir.join(STEPS_FILE);
    let steps: Steps = match std::fs::read(&steps_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| ConfirmError::Io {
            path: steps_path.clone(),
            source: std::io::Error::other(e),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfirmError::NoPlaybook(run_dir.to_path_buf()))
        }
        Err(e) => return Err(io(&steps_path)(e)),
    };
    let ledger_path = run_dir.join("ledger.jsonl");
    let ended = ledger::read_lenient(&ledger_path)
        .map(|(records, _)| records.iter().any(|r| matches!(r, Record::RunEnd { .. })))
        .unwrap_or(false);
    if ended {
        return Err(ConfirmError::Ended(run_dir.to_path_buf()));
    }
    let step = pick_step(&steps.steps, asked)?;
    let c = Confirmation {
        step,
        by: by.to_string(),
        at: OffsetDateTime::now_utc(),
    };
    let path = run_dir.join(CONFIRMATIONS_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    let mut line = serde_json::to_vec(&c).map_err(|e| io(&path)(std::io::Error::other(e)))?;
    line.push(b'\n');
    f.write_all(&line).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    Ok((steps, c))
}

/// The confirmations of a run, in the order they were made (unreadable lines are skipped:
/// a torn last line from a crash loses one confirmation, not the others).
pub fn confirmations(run_dir: &Path) -> Vec<Confirmation> {
    std::fs::read_to_string(run_dir.join(CONFIRMATIONS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_named_by_number_or_by_a_unique_part_of_its_text() {
        let steps: Vec<String> = [
            "Fail over the database",
            "Point DNS at region B",
            "Check the database replica",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(pick_step(&steps, "2").unwrap(), 2);
        assert_eq!(pick_step(&steps, "dns").unwrap(), 2);
        assert_eq!(pick_step(&steps, "FAIL OVER").unwrap(), 1);
        let e = pick_step(&steps, "database").unwrap_err().to_string();
        assert!(e.contains("matches several steps"), "{e}");
        assert!(e.contains("  3. Check the database replica"), "{e}");
        assert!(pick_step(&steps, "4").is_err());
        assert!(pick_step(&steps, "0").is_err());
        assert!(pick_step(&steps, "reboot").is_err());
    }
}
