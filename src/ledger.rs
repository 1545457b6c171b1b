//! The write-ahead ledger: an append-only JSON-lines file that says, before anything is
//! touched, what gameday is about to do and how to undo it.
//!
//! Every record is fsync'd before the call that appends it returns, so the order on disk is
//! the order of events: an `inject` record exists before the target is touched, a `revert`
//! record only after the undo succeeded. `gameday recover` reads the file back and undoes
//! every injection without a successful revert; reverts are idempotent, so recovering twice,
//! or recovering something that was recorded but never injected, is harmless.
//!
//! The file is written with plain blocking I/O under a mutex: records are tiny, appends are
//! rare (a few per fault), and doing it inline keeps the write-ahead order obvious.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The environment variable that marks every fleet process with its run's ledger
/// (canonical path), so that `recover` can stop a process the runner spawned but was killed
/// before recording.
pub const LEDGER_ENV: &str = "GAMEDAY_LEDGER";

/// A fault ready to be injected: what it will hit and how to undo it, captured before the
/// target is touched so that the ledger holds it first (write-ahead).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prepared {
    /// Human-readable identities of what will be hit (`pod shop/web-1`, `pid 4242`, `i-0abc`).
    pub targets: Vec<String>,
    /// Kind-specific undo record. [`Target::revert`] must be able to act on it alone.
    pub undo: serde_json::Value,
    /// The fault cannot be undone (a killed process, a terminated instance): revert is a
    /// no-op, and the report says so instead of claiming a rollback.
    pub irreversible: bool,
}

/// One line of the ledger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// The run began; `targets` holds what `recover` needs to rebuild each target.
    RunStart {
        /// The run's id.
        run_id: String,
        /// The scenario's name.
        scenario: String,
        /// The runner's process id, to tell a live run from a dead one.
        pid: u32,
        /// `Target::ledger_config()` by target name.
        targets: BTreeMap<String, serde_json::Value>,
        /// When (RFC 3339).
        at: String,
    },
    /// About to inject (or to start a process that must not outlive the run).
    Inject {
        /// Unique within the ledger.
        id: u64,
        /// The fault's name in the scenario (or `fleet` for sandbox processes).
        fault: String,
        /// The fault kind (`process_kill`, `process`, ...).
        kind: String,
        /// The target name.
        target: String,
        /// What will be hit, and how to undo it.
        prepared: Prepared,
        /// When the fault must be over at the latest (RFC 3339).
        deadline: String,
        /// When (RFC 3339).
        at: String,
    },
    /// The injection call failed; the fault may be partly applied, so it stays pending
    /// until a revert succeeds.
    InjectFailed {
        /// The injection's id.
        id: u64,
        /// Why.
        error: String,
        /// When (RFC 3339).
        at: String,
    },
    /// A revert was attempted.
    Revert {
        /// The injection's id.
        id: u64,
        /// Whether the undo succeeded.
        ok: bool,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// When (RFC 3339).
        at: String,
    },
    /// The run ended; `clean` when nothing was left pending.
    RunEnd {
        /// Nothing pending at the end.
        clean: bool,
        /// When (RFC 3339).
        at: String,
    },
}

/// An injection still waiting for a successful revert.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The injection's id.
    pub id: u64,
    /// The fault's name.
    pub fault: String,
    /// The fault kind.
    pub kind: String,
    /// The target name.
    pub target: String,
    /// What was hit and how to undo it.
    pub prepared: Prepared,
}

/// Errors reading or writing the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The file could not be created, written or synced.
    #[error("ledger {path}: {source}")]
    Io {
        /// The ledger file.
        path: PathBuf,
        /// The I/O error (a full disk shows up here).
        source: std::io::Error,
    },
    /// A line is not a ledger record.
    #[error("ledger {path}:{line}: not a ledger record: {source}")]
    Corrupt {
        /// The ledger file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// An open ledger, appending.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    next_id: u64,
}

/// Now, as RFC 3339 UTC, the format of every time in the ledger and the journal.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

impl Ledger {
    /// Creates a new ledger file; fails if it exists, so a ledger is never overwritten.
    pub fn create(path: &Path) -> Result<Self, LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::os::unix::fs::OpenOptionsExt::mode(
            OpenOptions::new().create_new(true).append(true),
            0o640,
        )
        .open(path)
        .map_err(io)?;
        // The file's own fsyncs make its contents durable, not its name: until the folder
        // is synced, a crash can lose the directory entry and with it every record, so that
        // `recover` finds no ledger at all.
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(Ledger {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner { file, next_id: 1 }),
        })
    }

    /// Opens an existing ledger to append to it (`recover` writes its reverts there).
    pub fn open_append(path: &Path) -> Result<Self, LedgerError> {
        // Lenient: `recover` must be able to record its reverts in a ledger with an
        // unreadable line (ids stay unique: they come from the readable injections, and an
        // unreadable line's id, if it had one, is below a later readable one's).
        let (records, _) = read_lenient(path)?;
        let next_id = records
            .iter()
            .filter_map(|r| match r {
                Record::Inject { id, .. } => Some(*id),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            + 1;
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        // A crash mid-append leaves a torn last line (never fsync'd, so its action never
        // started; `read` skips it). Cut it off, or the next record would be glued onto it.
        let bytes = std::fs::read(path).map_err(io)?;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64).map_err(io)?;
        }
        Ok(Ledger {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner { file, next_id }),
        })
    }

    /// The ledger's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and fsyncs it before returning.
    pub fn append(&self, record: &Record) -> Result<(), LedgerError> {
        let mut line = serde_json::to_vec(record).expect("ledger records always serialize");
        line.push(b'\n');
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        // A write that fails part-way (a full disk) would leave a torn line that the next
        // record glues onto, making the ledger unreadable for `recover`: cut it back.
        let before = inner.file.metadata().map(|m| m.len());
        if let Err(e) = inner.file.write_all(&line) {
            if let Ok(len) = before {
                let _ = inner.file.set_len(len);
            }
            return Err(io(e));
        }
        inner.file.sync_data().map_err(io)
    }

    /// Records an injection about to happen and returns its id. Call before touching the
    /// target; the record is on disk when this returns.
    pub fn record_inject(
        &self,
        fault: &str,
        kind: &str,
        target: &str,
        prepared: &Prepared,
        deadline: std::time::SystemTime,
    ) -> Result<u64, LedgerError> {
        let id = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let id = inner.next_id;
            inner.next_id += 1;
            id
        };
        let deadline = time::OffsetDateTime::from(deadline)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.append(&Record::Inject {
            id,
            fault: fault.into(),
            kind: kind.into(),
            target: target.into(),
            prepared: prepared.clone(),
            deadline,
            at: now_rfc3339(),
        })?;
        Ok(id)
    }

    /// Records the outcome of a revert.
    pub fn record_revert(&self, id: u64, result: Result<(), String>) -> Result<(), LedgerError> {
        let (ok, error) = match result {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
        self.append(&Record::Revert {
            id,
            ok,
            error,
            at: now_rfc3339(),
        })
    }
}

/// A ledger line that is not a record (not the torn last line a crash leaves, which is
/// skipped: that record was never fsync'd, so its action never started).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    /// 1-based line number.
    pub line: usize,
    /// Why it is not a record.
    pub error: String,
}

/// Reads every record of a ledger file; any unreadable line but a torn last one is an error,
/// so that a damaged ledger is never taken for one with nothing pending.
pub fn read(path: &Path) -> Result<Vec<Record>, LedgerError> {
    let (records, bad) = scan(path)?;
    match bad.into_iter().next() {
        None => Ok(records),
        Some((line, source)) => Err(LedgerError::Corrupt {
            path: path.into(),
            line,
            source,
        }),
    }
}

/// Reads what can be read of a ledger, and names the lines that could not: `recover`
/// reverts what the readable lines name, then says which lines it could not judge.
pub fn read_lenient(path: &Path) -> Result<(Vec<Record>, Vec<Unreadable>), LedgerError> {
    let (records, bad) = scan(path)?;
    let bad = bad
        .into_iter()
        .map(|(line, e)| Unreadable {
            line,
            error: e.to_string(),
        })
        .collect();
    Ok((records, bad))
}

/// Lines that did not parse, with their 1-based numbers.
type BadLines = Vec<(usize, serde_json::Error)>;

fn scan(path: &Path) -> Result<(Vec<Record>, BadLines), LedgerError> {
    let file = File::open(path).map_err(|source| LedgerError::Io {
        path: path.into(),
        source,
    })?;
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let last = count_lines(path);
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| LedgerError::Io {
            path: path.into(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            // A torn last line is what a crash mid-append leaves: the record was never
            // fsync'd, so the action it announced never started. Anything else is corrupt.
            Err(_) if i + 1 == last => break,
            Err(source) => bad.push((i + 1, source)),
        }
    }
    Ok((out, bad))
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count())
        .unwrap_or(0)
}

/// The injections of `records` that have no successful revert, in injection order.
pub fn pending(records: &[Record]) -> Vec<Pending> {
    let mut open: BTreeMap<u64, Pending> = BTreeMap::new();
    for r in records {
        match r {
            Record::Inject {
                id,
                fault,
                kind,
                target,
                prepared,
                ..
            } => {
                open.insert(
                    *id,
                    Pending {
                        id: *id,
                        fault: fault.clone(),
                        kind: kind.clone(),
                        target: target.clone(),
                        prepared: prepared.clone(),
                    },
                );
            }
            Record::Revert { id, ok: true, .. } => {
                open.remove(id);
            }
            _ => {}
        }
    }
    open.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(t: &str) -> Prepared {
        Prepared {
            targets: vec![t.into()],
            undo: serde_json::json!({"x": t}),
            irreversible: false,
        }
    }

    #[test]
    fn a_torn_last_line_is_cut_before_recover_appends() {
        // Regression: a crash (or a full disk) mid-append left `{"op":"inj` without a
        // newline; `recover` then glued its revert onto it and the ledger became unreadable.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let l = Ledger::create(&path).unwrap();
        let a = l
            .record_inject(
                "a",
                "k",
                "local",
                &prepared("a"),
                std::time::SystemTime::now(),
            )
            .unwrap();
        drop(l);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"op\":\"inject\",\"id\":2,\"fau").unwrap();
        drop(f);
        assert_eq!(pending(&read(&path).unwrap()).len(), 1);
        let w = Ledger::open_append(&path).unwrap();
        w.record_revert(a, Ok(())).unwrap();
        w.append(&Record::RunEnd {
            clean: true,
            at: now_rfc3339(),
        })
        .unwrap();
        let records = read(&path).unwrap();
        assert!(pending(&records).is_empty(), "{records:?}");
        assert_eq!(records.len(), 3, "{records:?}");
    }

    #[test]
    fn pending_is_injections_minus_successful_reverts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let l = Ledger::create(&path).unwrap();
        let a = l
            .record_inject(
                "a",
                "k",
                "local",
                &prepared("a"),
                std::time::SystemTime::now(),
            )
            .unwrap();
        let b = l
            .record_inject(
                "b",
                "k",
                "local",
                &prepared("b"),
                std::time::SystemTime::now(),
            )
            .unwrap();
        let c = l
            .record_inject(
                "c",
                "k",
                "local",
                &prepared("c"),
                std::time::SystemTime::now(),
            )
            .unwrap();
        l.record_revert(a, Ok(())).unwrap();
        l.record_revert(b, Err("boom".into())).unwrap();
        let p = pending(&read(&path).unwrap());
        assert_eq!(p.iter().map(|p| p.id).collect::<Vec<_>>(), vec![b, c]);
        assert!(
            Ledger::create(&path).is_err(),
            "a ledger is never overwritten"
        );
        let again = Ledger::open_append(&path).unwrap();
        let d = again
            .record_inject(
                "d",
                "k",
                "local",
                &prepared("d"),
                std::time::SystemTime::now(),
            )
            .unwrap();
        assert_eq!(d, c + 1);
    }

    #[test]
    fn torn_last_line_is_ignored_but_corruption_in_the_middle_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let l = Ledger::create(&path).unwrap();
        l.record_inject(
            "a",
            "k",
            "local",
            &prepared("a"),
            std::time::SystemTime::now(),
        )
        .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"op\":\"inj")
            .unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("garbage\n{text}\n")).unwrap();
        assert!(matches!(
            read(&path),
            Err(LedgerError::Corrupt { line: 1, .. })
        ));
        let (records, bad) = read_lenient(&path).unwrap();
        assert_eq!(records.len(), 1, "the readable record is still read");
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![1]);
    }
}
