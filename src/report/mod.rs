//! The post-gameday report: what people read after a gameday and bring to the review.
//!
//! One [`Journal`] (the complete record of a run, written as `journal.json`) is rendered into
//! `report.md` ([`render_markdown`]), a self-contained `report.html` with SVG charts
//! ([`render_html`]), `junit.xml` ([`render_junit`]) so CI shows a gameday like a test run,
//! and the summary printed after `gameday run` ([`render_terminal`]). [`analysis`] holds the
//! pure rules behind the numbers: recovery time, derived action items, and the comparison of
//! two runs; [`impact`] measures what users felt per fault against the baseline and drafts
//! the findings. [`cli`] is `gameday report`, which re-renders a journal and compares it
//! with an older one, and `gameday history`, which lists every run under `--out` with
//! its resilience score and regressions ([`history`]) and draws their trend as one page
//! (`history_html`).
//!
//! Each run gets its own directory from [`run_dir`] (`reports/<date>-<scenario>-<run id>/`),
//! created so that no run ever overwrites another.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub mod analysis;
pub mod cli;
pub mod fmt;
pub mod from_run;
pub mod history;
mod history_html;
mod html;
pub mod impact;
pub mod journal;
mod junit;
mod markdown;
mod svg;
mod terminal;

pub use analysis::{analyse, compare, RunComparison};
pub use from_run::journal_from_run;
pub use history_html::render_history_html;
pub use html::{render_compare_html, render_html};
pub use journal::*;
pub use junit::render_junit;
pub use markdown::{render_compare_markdown, render_markdown};
pub use terminal::render_terminal;

/// Errors from reading, rendering or writing a report, with the file they are about.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The journal file could not be read.
    #[error("cannot read journal {path}: {source}")]
    Read {
        /// The journal's path.
        path: PathBuf,
        /// The IO error.
        source: io::Error,
    },
    /// The journal is not valid JSON of the expected shape.
    #[error("{path} is not a gameday journal: {source}")]
    Parse {
        /// The journal's path.
        path: PathBuf,
        /// Where and why parsing failed.
        source: serde_json::Error,
    },
    /// The journal was written by a gameday with a newer format.
    #[error(
        "{path} has journal_version {found}, this gameday reads up to {supported}: \
         upgrade gameday to render it"
    )]
    Version {
        /// The journal's path.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A report file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: io::Error,
    },
    /// A JUnit document could not be serialized.
    #[error("cannot render junit.xml: {0}")]
    Junit(#[from] quick_junit::SerializeError),
}

/// File names inside a run directory.
pub const JOURNAL_FILE: &str = "journal.json";
/// The Markdown report's file name.
pub const MARKDOWN_FILE: &str = "report.md";
/// The HTML report's file name.
pub const HTML_FILE: &str = "report.html";
/// The JUnit file's file name.
pub const JUNIT_FILE: &str = "junit.xml";

/// Reads and checks a journal file.
pub fn read_journal(path: &Path) -> Result<Journal, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    // Look at the version before the shape, so a newer journal gets the helpful error
    // rather than an "unknown field" one.
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(found) = v.get("journal_version").and_then(|v| v.as_u64()) {
            if found > u64::from(JOURNAL_VERSION) {
                return Err(ReportError::Version {
                    path: path.to_owned(),
                    found: found as u32,
                    supported: JOURNAL_VERSION,
                });
            }
        }
    }
    serde_json::from_str(&text).map_err(|source| ReportError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Writes `contents` to `path` through a temporary file and a rename, so a reader (or a
/// crash) never sees half a report.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // Owner and group only (0640) whatever the umask, like the ledger beside it.
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(contents).map_err(err)?;
    }
    fs::rename(&tmp, path).map_err(err)
}

/// Writes the journal and every rendering of it into `dir` (which must exist): returns the
/// files written.
pub fn write_all(journal: &Journal, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let json = serde_json::to_string_pretty(journal).expect("a journal always serializes");
    let files = [
        (JOURNAL_FILE, json),
        (MARKDOWN_FILE, render_markdown(journal)),
        (HTML_FILE, render_html(journal)),
        (JUNIT_FILE, render_junit(journal)?),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// Turns a scenario name into something safe in a directory name: lowercase ASCII
/// letters, digits and single dashes.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    if out.is_empty() {
        "scenario".to_owned()
    } else {
        out.chars().take(60).collect()
    }
}

/// Creates and returns a new, empty run directory `base/<date>-<scenario>-<run id>/`.
///
/// The leaf is made with `create_dir` (not `create_dir_all`), which fails if it exists, so
/// two runs can never share a directory even when started at the same instant; on such a
/// clash a `-2`, `-3`... suffix is tried.
pub fn run_dir(
    base: &Path,
    date: time::Date,
    scenario: &str,
    run_id: &str,
) -> Result<PathBuf, ReportError> {
    fs::create_dir_all(base).map_err(|source| ReportError::Write {
        path: base.to_owned(),
        source,
    })?;
    let stem = format!(
        "{:04}-{:02}-{:02}-{}-{}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        slug(scenario),
        slug(run_id)
    );
    let mut last_err = None;
    for n in 1..=100 {
        let name = if n == 1 {
            stem.clone()
        } else {
            format!("{stem}-{n}")
        };
        let path = base.join(name);
        match std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o750)
            .create(&path)
        {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(source) => return Err(ReportError::Write { path, source }),
        }
    }
    Err(ReportError::Write {
        path: base.join(stem),
        source: last_err.unwrap_or_else(|| io::Error::other("run directory taken")),
    })
}
