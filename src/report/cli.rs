//! `gameday report JOURNAL [--compare OLDER_JOURNAL] [--format md|html|junit|all] [--out DIR]`:
//! re-renders a run from its journal, and compares it with an older run of the same
//! scenario (last month against this month).
//!
//! Exit codes: 0 rendered (and, with `--compare`, nothing regressed); 1 `--compare` found a
//! regression, so CI can gate on it; errors (unreadable journal, unwritable directory) are
//! returned to `main`, which prints them and exits 2.

use std::fs;
use std::path::PathBuf;

use anyhow::Context as _;

use super::analysis::{compare, DEFAULT_TOLERANCE_PCT};
use super::{
    read_journal, render_compare_html, render_compare_markdown, render_html, render_junit,
    render_markdown, write_atomic, HTML_FILE, JOURNAL_FILE, JUNIT_FILE, MARKDOWN_FILE,
};

/// Which renderings to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `report.md`.
    Md,
    /// `report.html`, self-contained, with charts.
    Html,
    /// `junit.xml`, one test case per SLO per phase, per fault impact and per revert.
    Junit,
    /// All of the above.
    All,
}

/// Arguments of `gameday report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The run's journal.json (in its run directory under reports/).
    #[arg(value_name = "JOURNAL")]
    pub journal: PathBuf,
    /// An older journal of the same scenario: also write compare.md / compare.html listing
    /// regressions and improvements per SLO and per phase, and exit 1 on any regression.
    #[arg(long, value_name = "OLDER_JOURNAL")]
    pub compare: Option<PathBuf>,
    /// Which renderings to write.
    #[arg(long, value_enum, default_value_t = Format::All)]
    pub format: Format,
    /// Where to write; default: the journal's own directory.
    #[arg(long, value_name = "DIR", env = "GAMEDAY_REPORT_OUT")]
    pub out: Option<PathBuf>,
    /// With --compare: relative change, in percent, below which a value counts as unchanged.
    #[arg(long, value_name = "PCT", default_value_t = DEFAULT_TOLERANCE_PCT)]
    pub tolerance_pct: f64,
}

/// Runs `gameday report`; returns the process exit code.
pub fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let mut journal = read_journal(&args.journal)?;
    super::impact::fill_missing(&mut journal);
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => args
            .journal
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    fs::create_dir_all(&out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let want = |f: Format| args.format == Format::All || args.format == f;
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> anyhow::Result<()> {
        let path = out.join(name);
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
        Ok(())
    };
    // Writing elsewhere than the run directory: bring the journal along, so the directory
    // stands alone and can be re-rendered from.
    let same_dir = fs::canonicalize(&out).ok()
        == args.journal.parent().and_then(|p| {
            fs::canonicalize(if p.as_os_str().is_empty() {
                ".".as_ref()
            } else {
                p
            })
            .ok()
        });
    if !same_dir && args.format == Format::All {
        write(
            JOURNAL_FILE,
            serde_json::to_string_pretty(&journal).expect("a journal always serializes"),
        )?;
    }
    if want(Format::Md) {
        write(MARKDOWN_FILE, render_markdown(&journal))?;
    }
    if want(Format::Html) {
        write(HTML_FILE, render_html(&journal))?;
    }
    if want(Format::Junit) {
        write(JUNIT_FILE, render_junit(&journal)?)?;
    }
    let mut code = 0;
    if let Some(older) = &args.compare {
        let old = read_journal(older)?;
        let cmp = compare(&old, &journal, args.tolerance_pct);
        let md = render_compare_markdown(&cmp);
        if want(Format::Md) || want(Format::Junit) {
            write("compare.md", md.clone())?;
        }
        if want(Format::Html) {
            write("compare.html", render_compare_html(&cmp))?;
        }
        println!("{md}");
        if cmp.regressions().next().is_some() {
            code = 1;
        }
    }
    for p in &written {
        eprintln!("wrote {}", p.display());
    }
    Ok(code)
}
