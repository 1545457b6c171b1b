//! The index of unfinished runs in the user's state directory, so that `gameday recover`
//! finds a killed run wherever it is started from, not only under the `--out` folder of the
//! current directory (a `recover` that said "nothing to recover" after a SIGKILL, because
//! it ran elsewhere, was a dangerous false negative).
//!
//! One small file per run, `$XDG_STATE_HOME/gameday/runs/<run id>` (fallback
//! `~/.local/state/gameday/runs/<run id>`), holding the run folder's absolute path. A file per
//! run, not one shared list, so that concurrent runs never write the same file. The runner
//! registers its folder right after creating the ledger, before anything is started, and
//! removes the entry when the run ends clean; `recover` removes the entries it has finished
//! and those whose folder is gone.

use std::path::{Path, PathBuf};

/// The environment variable of the XDG base-directory spec for state files.
pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";

/// `$XDG_STATE_HOME/gameday`, or `~/.local/state/gameday` (the spec's default); `None`
/// when neither can be found. A relative `XDG_STATE_HOME` is ignored, as the spec says.
pub fn state_dir() -> Option<PathBuf> {
    let base = std::env::var_os(XDG_STATE_HOME)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|h| h.is_absolute())
                .map(|h| h.join(".local").join("state"))
        })?;
    Some(base.join("gameday"))
}

fn runs_dir() -> Option<PathBuf> {
    state_dir().map(|d| d.join("runs"))
}

/// Registers a run folder. Returns the index entry written.
pub fn register(run_id: &str, run_dir: &Path) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = runs_dir().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "neither XDG_STATE_HOME nor HOME is set to an absolute path",
        )
    })?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let abs = std::fs::canonicalize(run_dir)?;
    let entry = dir.join(run_id);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&entry)?;
    f.write_all(abs.as_os_str().as_encoded_bytes())?;
    f.sync_all()?;
    // The entry's name must survive a crash as much as its contents.
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(entry)
}

/// The folder of an unfinished run, by its id.
pub fn dir_of(run_id: &str) -> Option<PathBuf> {
    if run_id.is_empty() || run_id.contains(['/', '.']) {
        return None;
    }
    let raw = std::fs::read(runs_dir()?.join(run_id)).ok()?;
    Some(PathBuf::from(String::from_utf8(raw).ok()?))
}

/// Removes a run's entry (its run ended clean, or `recover` finished it). Missing is fine.
pub fn forget(run_id: &str) {
    if let Some(d) = runs_dir() {
        let _ = std::fs::remove_file(d.join(run_id));
    }
}

/// Removes every entry that points at `run_dir`.
pub fn forget_dir(run_dir: &Path) {
    let abs = std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
    for (entry, dir) in entries() {
        if dir == abs {
            let _ = std::fs::remove_file(entry);
        }
    }
}

/// Every indexed run: (index entry, run folder).
fn entries() -> Vec<(PathBuf, PathBuf)> {
    let Some(d) = runs_dir() else {
        return vec![];
    };
    let Ok(rd) = std::fs::read_dir(&d) else {
        return vec![];
    };
    rd.flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((e.path(), PathBuf::from(text.trim_end())))
        })
        .collect()
}

/// The ledgers of the indexed runs that may still need `recover`. Entries whose folder or
/// ledger is gone are removed on the way (nothing is left to recover from them).
pub fn ledgers() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (entry, dir) in entries() {
        let ledger = dir.join("ledger.jsonl");
        if ledger.is_file() {
            out.push(ledger);
        } else {
            let _ = std::fs::remove_file(entry);
        }
    }
    out.sort();
    out
}
