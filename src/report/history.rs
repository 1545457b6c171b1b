//! `gameday history`'s rules, without IO: journals in, one row per run out, with its
//! resilience score and the regressions against the previous run of the same scenario.
//! [`super::cli`] finds and loads the journals; [`super::history_html`] draws the trend page
//! from the same [`History`], so the table, the JSON and the page never disagree.
//!
//! **Resilience score** (0–100): the share of SLO checks met, where a check is one SLO in
//! one phase (`slos[].per_phase[]`), as the report's tables show them, weighted by
//! severity. Journals carry no SLO severity today, so every check weighs 1 (the weight is
//! one function, [`check_weight`], for when they do). This is LitmusChaos' resilience
//! score (the weighted share of probe checks passing) with our SLO-phase checks as the
//! probes. A run without any check (aborted or unreachable before a phase was judged)
//! has no score rather than a made-up one.
//!
//! A run **regressed** when, against the previous run (by start time) of the same scenario
//! name, its score dropped, or an SLO that held in every phase before now fails.

use serde::Serialize;

use super::analysis::rfc3339;
use super::journal::{Journal, Outcome, SloRecord};

/// Scores closer than this count as equal, so rounding never reads as a regression.
const SCORE_EPSILON: f64 = 1e-9;

/// Everything `gameday history` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    /// The runs, oldest first (by start time, then by folder).
    pub runs: Vec<HistoryRow>,
    /// Folders holding a run that could not be read, with why.
    pub unreadable: Vec<Unreadable>,
}

/// A run folder whose journal could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    /// The journal's (or the run folder's) path.
    pub path: String,
    /// Why it could not be read.
    pub error: String,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// The run folder.
    pub dir: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// The run id.
    pub run_id: String,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file, as given to `gameday run`.
    pub scenario_file: Option<String>,
    /// The verdict (`HELD`, `VIOLATED`, ...).
    pub verdict: String,
    /// Impacts beyond tolerance.
    pub findings: usize,
    /// Action items (the scenario's and the derived ones).
    pub action_items: usize,
    /// Weight of the SLO checks met.
    pub checks_met: f64,
    /// Weight of all SLO checks.
    pub checks_total: f64,
    /// The resilience score, 0–100; absent without any check.
    pub score: Option<f64>,
    /// Each SLO's key value: the worst phase's.
    pub slos: Vec<KeySlo>,
    /// Why this run regressed against the previous run of its scenario; empty when it did
    /// not (or is the first).
    pub regressions: Vec<String>,
}

/// One SLO's key value in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeySlo {
    /// The SLO's name.
    pub name: String,
    /// The objective as written (`< 250 ms`).
    pub objective: String,
    /// The threshold.
    pub threshold: f64,
    /// The phase where it did worst.
    pub phase: Option<String>,
    /// Its value there; absent when no phase measured it.
    pub value: Option<f64>,
    /// It held in every phase.
    pub passed: bool,
}

/// The weight of one SLO check. Every check weighs 1: SLOs have no severity yet.
pub fn check_weight(_slo: &SloRecord) -> f64 {
    1.0
}

/// The weights of the checks met and of all checks, and the score from them.
pub fn score(j: &Journal) -> (f64, f64, Option<f64>) {
    let (mut met, mut total) = (0.0, 0.0);
    for slo in &j.slos {
        let w = check_weight(slo);
        for r in &slo.per_phase {
            total += w;
            if r.passed {
                met += w;
            }
        }
    }
    let score = (total > 0.0).then(|| 100.0 * met / total);
    (met, total, score)
}

/// An SLO's value in the phase where it did worst (the highest for a "lower is better"
/// objective, the lowest otherwise).
pub fn key_slo(slo: &SloRecord) -> KeySlo {
    let lower = slo.comparison.lower_is_better();
    let worst = slo
        .per_phase
        .iter()
        .filter_map(|r| r.observed.filter(|v| v.is_finite()).map(|v| (r, v)))
        .max_by(|a, b| {
            if lower {
                a.1.total_cmp(&b.1)
            } else {
                b.1.total_cmp(&a.1)
            }
        });
    KeySlo {
        name: slo.name.clone(),
        objective: slo.objective.clone(),
        threshold: slo.threshold,
        phase: worst.map(|(r, _)| r.phase.clone()),
        value: worst.map(|(_, v)| v),
        passed: slo.passed,
    }
}

/// One run's row, regressions not yet worked out.
pub fn row(dir: &str, j: &Journal) -> HistoryRow {
    let (checks_met, checks_total, score) = score(j);
    HistoryRow {
        dir: dir.to_owned(),
        started_at: rfc3339(j.run.started_at),
        run_id: j.run.id.clone(),
        scenario: j.run.scenario_name.clone(),
        scenario_file: j.run.scenario_file.clone(),
        verdict: j.run.outcome.label().to_owned(),
        findings: j.findings().count(),
        action_items: j.action_items.len(),
        checks_met,
        checks_total,
        score,
        slos: j.slos.iter().map(key_slo).collect(),
        regressions: Vec::new(),
    }
}

/// Why `new` regressed against `old` (the previous run of the same scenario).
pub fn regressions(old: &HistoryRow, new: &HistoryRow) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (old.score, new.score) {
        if b + SCORE_EPSILON < a {
            out.push(format!("score {b:.1} < {a:.1} in run {}", old.run_id));
        }
    }
    for s in &new.slos {
        if s.passed {
            continue;
        }
        if old.slos.iter().any(|o| o.name == s.name && o.passed) {
            out.push(format!("{} held in run {}, fails now", s.name, old.run_id));
        }
    }
    out
}

/// Does a run belong to `filter` (a scenario name, or the scenario file as recorded)?
pub fn matches(j: &Journal, filter: &str) -> bool {
    j.run.scenario_name == filter || j.run.scenario_file.as_deref() == Some(filter)
}

/// Builds the history: rows sorted oldest first, each compared with the previous run of
/// its scenario. `runs` pairs each journal with its run folder.
pub fn history(runs: &[(String, Journal)], unreadable: Vec<Unreadable>) -> History {
    let mut order: Vec<&(String, Journal)> = runs.iter().collect();
    order.sort_by(|a, b| {
        a.1.run
            .started_at
            .cmp(&b.1.run.started_at)
            .then_with(|| a.0.cmp(&b.0))
    });
    let mut rows: Vec<HistoryRow> = Vec::new();
    for (dir, j) in order {
        let mut r = row(dir, j);
        if let Some(prev) = rows.iter().rev().find(|p| p.scenario == r.scenario) {
            r.regressions = regressions(prev, &r);
        }
        rows.push(r);
    }
    History {
        runs: rows,
        unreadable,
    }
}

/// The scenarios in the history, in order of first run.
pub fn scenarios(h: &History) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in &h.runs {
        if !out.contains(&r.scenario.as_str()) {
            out.push(&r.scenario);
        }
    }
    out
}

/// A score for people: `87.5` or `–`.
pub fn fmt_score(s: Option<f64>) -> String {
    s.map_or_else(|| "–".to_owned(), |s| format!("{s:.1}"))
}

/// The history as the terminal table (comfy-table sizes the columns), then the unreadable
/// runs, each with its path.
pub fn render_table(h: &History) -> String {
    use comfy_table::{presets, CellAlignment, Table};
    let mut out = String::new();
    if h.runs.is_empty() {
        out.push_str("no runs found\n");
    } else {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
            "date",
            "scenario",
            "run",
            "verdict",
            "score",
            "checks met",
            "findings",
            "key SLO values (worst phase)",
            "regression",
        ]);
        for r in &h.runs {
            let slos = r
                .slos
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {} {}",
                        if s.passed { "✔" } else { "✘" },
                        s.name,
                        s.value
                            .map_or_else(|| "–".to_owned(), super::analysis::fmt_num),
                        s.objective
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            t.add_row(vec![
                r.started_at
                    .get(..16)
                    .unwrap_or(&r.started_at)
                    .replace('T', " "),
                r.scenario.clone(),
                r.run_id.clone(),
                r.verdict.clone(),
                fmt_score(r.score),
                format!("{}/{}", r.checks_met, r.checks_total),
                r.findings.to_string(),
                slos,
                if r.regressions.is_empty() {
                    String::new()
                } else {
                    format!("REGRESSION: {}", r.regressions.join("; "))
                },
            ]);
        }
        for c in [4, 5, 6] {
            if let Some(col) = t.column_mut(c) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        for line in t.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    for u in &h.unreadable {
        out.push_str(&format!("UNREADABLE {}: {}\n", u.path, u.error));
    }
    out
}

/// Whether a verdict counts as the hypothesis holding (for the page's colours).
pub fn held(verdict: &str) -> bool {
    verdict == Outcome::Held.label()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(slos: serde_json::Value) -> Journal {
        serde_json::from_value(serde_json::json!({
            "journal_version": 1,
            "run": {"id": "r1", "scenario_name": "s", "started_at": "2026-11-01T10:00:00Z",
                    "ended_at": "2026-11-01T10:01:00Z", "gameday_version": "0.1.0",
                    "exit_code": 3, "outcome": "aborted"},
            "slos": slos,
        }))
        .unwrap()
    }

    /// An aborted run judged nothing: no score, not 0 and not 100.
    #[test]
    fn a_run_without_checks_has_no_score() {
        assert_eq!(score(&journal(serde_json::json!([]))), (0.0, 0.0, None));
        assert_eq!(fmt_score(None), "–");
    }

    /// For a `>=` objective the worst phase is the lowest value, and phases without a
    /// value still count as checks (failed ones).
    #[test]
    fn key_value_is_the_worst_phase_and_unmeasured_phases_count() {
        let j = journal(serde_json::json!([{
            "name": "availability", "metric": "availability_pct", "objective": ">= 99%",
            "comparison": "ge", "threshold": 99.0, "passed": false,
            "per_phase": [
                {"phase": "warm", "observed": 100.0, "passed": true},
                {"phase": "chaos", "observed": 97.5, "passed": false},
                {"phase": "settle", "observed": 99.5, "passed": true},
                {"phase": "late", "passed": false}
            ]
        }]));
        let k = key_slo(&j.slos[0]);
        assert_eq!((k.phase.as_deref(), k.value), (Some("chaos"), Some(97.5)));
        assert_eq!(score(&j), (2.0, 4.0, Some(50.0)));
    }
}
