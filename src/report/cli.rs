//! `gameday report JOURNAL [--compare OLDER_JOURNAL] [--format md|html|junit|all] [--out DIR]`:
//! re-renders a run from its journal, and compares it with an older run of the same
//! scenario (last month against this month).
//!
//! Exit codes: 0 rendered (and, with `--compare`, nothing regressed); 1 `--compare` found a
//! regression, so CI can gate on it; errors (unreadable journal, unwritable directory) are
//! returned to `main`, which prints them and exits 2.
//!
//! Also `gameday history [--out DIR] [--json] [--html FILE] [SCENARIO]`: every run under
//! `--out`, loaded with the same [`read_journal`] (version check, defaults for older
//! journals, impacts worked out again where missing), scored and compared by
//! [`super::history`], drawn by [`super::history_html`]. Exit 0 whatever the runs say (it
//! is a listing; gate CI on `gameday report --compare`); 2 when `--out` cannot be read.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::analysis::{compare, DEFAULT_TOLERANCE_PCT};
use super::history::{history, matches, render_table, HistoryRow, Unreadable};
use super::history_html::render_history_html;
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

/// Arguments of `gameday history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Only the runs of this scenario: its name, or its file as given to `gameday run`.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<String>,
    /// Where runs are written (as `gameday run --out`); each folder in it holding a
    /// `journal.json` is a run.
    #[arg(long, default_value = "reports", env = "GAMEDAY_OUT")]
    pub out: PathBuf,
    /// Print the history as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the trend page (self-contained HTML, one section per scenario) to this
    /// file; `reports/index.html` is the usual place. Links to each run's report.html are
    /// relative to it.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// The runs found under `--out`, each journal with its folder, and the ones that could not
/// be read.
pub type LoadedRuns = (Vec<(String, super::Journal)>, Vec<Unreadable>);

/// The run folders under `out`: every folder holding a `journal.json`, and every folder
/// holding only a ledger (a run that never wrote its journal, listed as unreadable).
/// Journals that fail to load are returned as [`Unreadable`] with their path, never dropped.
pub fn load_runs(out: &Path) -> anyhow::Result<LoadedRuns> {
    let entries =
        fs::read_dir(out).with_context(|| format!("cannot read run folder {}", out.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let (mut runs, mut unreadable) = (Vec::new(), Vec::new());
    for dir in dirs {
        let path = dir.join(JOURNAL_FILE);
        if !path.exists() {
            if dir.join("ledger.jsonl").exists() {
                unreadable.push(Unreadable {
                    path: dir.display().to_string(),
                    error: "no journal.json beside its ledger: the run did not finish \
                            (see gameday recover)"
                        .to_owned(),
                });
            }
            continue;
        }
        match read_journal(&path) {
            Ok(mut j) => {
                super::impact::fill_missing(&mut j);
                runs.push((dir.display().to_string(), j));
            }
            Err(e) => unreadable.push(Unreadable {
                path: path.display().to_string(),
                error: e.to_string(),
            }),
        }
    }
    Ok((runs, unreadable))
}

/// The href from the page's folder to a run's report.html: relative when the run lies
/// under that folder, else the absolute path.
fn report_href(page_dir: &Path, r: &HistoryRow) -> Option<String> {
    let report = Path::new(&r.dir).join(HTML_FILE);
    if !report.is_file() {
        return None;
    }
    let abs = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let (report, base) = (abs(&report), abs(page_dir));
    Some(match report.strip_prefix(&base) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => format!("file://{}", report.display()),
    })
}

/// Runs `gameday history`; returns the process exit code.
pub fn run_history(args: HistoryArgs) -> anyhow::Result<i32> {
    let (mut runs, unreadable) = load_runs(&args.out)?;
    if let Some(filter) = &args.scenario {
        // A file given differently than at run time (`./s.yaml` vs `s.yaml`) still matches.
        let canon = |p: &str| fs::canonicalize(p).ok();
        let wanted = canon(filter);
        runs.retain(|(_, j)| {
            matches(j, filter)
                || (wanted.is_some() && j.run.scenario_file.as_deref().and_then(canon) == wanted)
        });
    }
    let h = history(&runs, unreadable);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&h).expect("a history always serializes")
        );
    } else {
        print!("{}", render_table(&h));
    }
    if let Some(file) = &args.html {
        let page_dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        fs::create_dir_all(&page_dir)
            .with_context(|| format!("cannot create {}", page_dir.display()))?;
        let page = render_history_html(&h, &|r| report_href(&page_dir, r));
        write_atomic(file, page.as_bytes())?;
        eprintln!("wrote {}", file.display());
    }
    Ok(0)
}
