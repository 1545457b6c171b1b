//! `report.md`: the report people paste into the review document.
//!
//! The verdict comes first, then the hypothesis and each SLO per phase, the phases measured
//! side by side with the change from baseline, the fault timeline, what users felt per fault,
//! recovery, action items with blanks to fill, and the checklist. Markdown is built
//! by hand (plain `write!`): it is a handful of tables, and a templating crate would add more
//! than it saves. The sentences and cells shared with the HTML report and the terminal
//! summary live here too ([`verdict`], [`fmt_dur`], [`impact_cells`]).

use std::fmt::Write as _;

use super::analysis::{fmt_num, fmt_value, rfc3339, shortfall, Change, RunComparison};
use super::journal::{
    ActionSource, FaultImpact, Journal, Outcome, PhaseRecord, SloMetric, SloRecord,
};

/// The verdict, summarised for the first lines of every rendering.
pub(crate) struct Verdict {
    /// `HELD`, `VIOLATED`...
    pub label: &'static str,
    /// Whether it is good news.
    pub good: bool,
    /// One or two sentences: what held or what broke, by how much.
    pub sentence: String,
}

/// Builds the verdict from the outcome and the SLO results.
pub(crate) fn verdict(j: &Journal) -> Verdict {
    let broken: Vec<String> = j
        .slos
        .iter()
        .flat_map(|s| {
            s.per_phase.iter().filter(|r| !r.passed).map(move |r| {
                let how = match r.observed {
                    Some(v) => format!(
                        "{} against {} ({})",
                        fmt_value(v, s.metric.unit()),
                        s.objective,
                        shortfall(s, v)
                    ),
                    None if s.metric == SloMetric::RecoveryTimeS => {
                        "did not recover within the run".to_owned()
                    }
                    None => "nothing measured".to_owned(),
                };
                format!("`{}` in `{}`: {how}", s.name, r.phase)
            })
        })
        .collect();
    let failed_slos = j.slos.iter().filter(|s| !s.passed).count();
    let not_reverted: Vec<&str> = j
        .faults
        .iter()
        .filter(|f| !f.reverted)
        .map(|f| f.name.as_str())
        .collect();
    let mut sentence = match j.run.outcome {
        Outcome::Held => format!(
            "The hypothesis held: all {} SLOs were met in every phase.",
            j.slos.len()
        ),
        Outcome::Violated => format!(
            "The hypothesis did not hold: {failed_slos} of {} SLOs broke.",
            j.slos.len()
        ),
        Outcome::Aborted => format!(
            "The run was aborted{}; every fault was reverted.",
            j.run
                .abort_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        Outcome::RevertIncomplete => format!(
            "Faults may still be active: the revert of {} failed. Run `gameday recover` now.",
            not_reverted
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Outcome::Unreachable => format!(
            "A target could not be reached{}; nothing was injected.",
            j.run
                .abort_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    };
    if !broken.is_empty() {
        sentence.push_str(" Broken: ");
        sentence.push_str(&broken.join("; "));
        sentence.push('.');
    }
    let felt: Vec<String> = j
        .findings()
        .map(|i| {
            format!(
                "`{}` ({})",
                i.fault,
                super::impact::felt(i, &j.impact_tolerance).join(", ")
            )
        })
        .collect();
    if !felt.is_empty() {
        let _ = write!(
            sentence,
            " Users felt {} beyond the impact tolerance: {}.",
            if felt.len() == 1 {
                "1 fault".to_owned()
            } else {
                format!("{} faults", felt.len())
            },
            felt.join("; ")
        );
    }
    Verdict {
        label: j.run.outcome.label(),
        good: j.run.outcome == Outcome::Held,
        sentence,
    }
}

/// A duration for people: `45.2s`, `3m 05s`, `1h 02m`.
pub(crate) fn fmt_dur(s: f64) -> String {
    if !s.is_finite() {
        return "n/a".to_owned();
    }
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {sec:02}s")
    }
}

/// An offset into the run, for timelines: `t+12.5s`.
pub(crate) fn fmt_offset(t: f64) -> String {
    // Before the timeline's zero (preflight, starting the targets): `t-2.3s`.
    if t < 0.0 {
        format!("t-{:.1}s", -t)
    } else {
        format!("t+{t:.1}s")
    }
}

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The change of `v` from the baseline's `b`, as `+12 ms, +40%` (`+1.5 pts` for
/// percentages).
pub(crate) fn delta(v: f64, b: f64, unit: &str) -> String {
    let d = v - b;
    let sign = if d >= 0.0 { "+" } else { "" };
    if unit == "%" {
        // A change of a percentage is in points; a percent of a percent confuses.
        return format!("{sign}{} pts", fmt_num(d));
    }
    let rel = if b.abs() > f64::EPSILON {
        format!(", {sign}{:.0}%", d / b * 100.0)
    } else {
        String::new()
    };
    format!("{sign}{}{rel}", fmt_value(d, unit))
}

/// The rows of the phase table: a label, a unit and how to read the value from a phase.
pub(crate) type PhaseMetric = (&'static str, &'static str, fn(&PhaseRecord) -> Option<f64>);

/// Every row of the phase table, in reading order.
pub(crate) const PHASE_METRICS: [PhaseMetric; 9] = [
    ("rate", "req/s", |p| Some(p.stats.rate)),
    ("error %", "%", |p| Some(p.stats.error_pct)),
    ("p50", "ms", |p| p.stats.latency_ms.map(|l| l.p50)),
    ("p90", "ms", |p| p.stats.latency_ms.map(|l| l.p90)),
    ("p99", "ms", |p| p.stats.latency_ms.map(|l| l.p99)),
    ("p99.9", "ms", |p| p.stats.latency_ms.map(|l| l.p999)),
    ("max", "ms", |p| p.stats.latency_ms.map(|l| l.max)),
    ("mean", "ms", |p| p.stats.latency_ms.map(|l| l.mean)),
    ("requests", "", |p| Some(p.stats.requests as f64)),
];

/// A phase's name with its role when the name does not already say it (`warm (baseline)`,
/// but just `chaos` for a phase named after its role).
pub(crate) fn phase_label(p: &PhaseRecord) -> String {
    if p.role.is_empty() || p.role == p.name {
        p.name.clone()
    } else {
        format!("{} ({})", p.name, p.role)
    }
}

/// The columns of the SLO table: each phase (name, `name (role)`), then any pseudo-phase an
/// SLO was judged over that is not a phase (the engine judges recovery time over `all`).
pub(crate) fn slo_columns(j: &Journal) -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> = j
        .phases
        .iter()
        .map(|p| (p.name.clone(), phase_label(p)))
        .collect();
    for s in &j.slos {
        for r in &s.per_phase {
            if !cols.iter().any(|(n, _)| *n == r.phase) {
                let label = if r.phase == "all" {
                    "whole run".to_owned()
                } else {
                    r.phase.clone()
                };
                cols.push((r.phase.clone(), label));
            }
        }
    }
    cols
}

/// One SLO's cell in one phase: mark, value, and change from baseline.
pub(crate) fn slo_cell(j: &Journal, slo: &SloRecord, phase: &str) -> Option<(bool, String)> {
    let r = slo.per_phase.iter().find(|r| r.phase == phase)?;
    let unit = slo.metric.unit();
    let mut text = match r.observed {
        Some(v) => fmt_value(v, unit),
        None => "no data".to_owned(),
    };
    let base = j
        .baseline()
        .and_then(|b| slo.per_phase.iter().find(|r| r.phase == b.name))
        .filter(|b| b.phase != phase);
    if let (Some(v), Some(b)) = (r.observed, base.and_then(|b| b.observed)) {
        let _ = write!(text, " ({})", delta(v, b, unit));
    }
    Some((r.passed, text))
}

/// The columns of the per-fault impact table, shared by every rendering.
pub(crate) const IMPACT_HEADERS: [&str; 9] = [
    "fault",
    "impact after",
    "errors (peak)",
    "p50 (peak)",
    "p99 (peak)",
    "failed / slower",
    "lasted",
    "recovered",
    "finding",
];

/// A latency over the fault's window against the baseline's: `280 ms (23x), peak 410 ms`.
fn latency_cell(v: Option<f64>, base: Option<f64>, peak: Option<f64>) -> String {
    let Some(v) = v else {
        return "no success".to_owned();
    };
    let mut out = fmt_value(v, "ms");
    if let Some(b) = base.filter(|b| *b > 0.0) {
        let _ = write!(out, " ({}x)", fmt_num(v / b));
    }
    if let Some(p) = peak {
        let _ = write!(out, ", peak {}", fmt_value(p, "ms"));
    }
    out
}

/// One fault's row of the impact table, as plain text (each renderer adds its own marks).
pub(crate) fn impact_cells(i: &FaultImpact) -> [String; 9] {
    let b = i.baseline.as_ref();
    let errors = match b {
        Some(b) => format!(
            "{} ({}), peak {}",
            fmt_value(i.error_pct, "%"),
            delta(i.error_pct, b.error_pct, "%"),
            fmt_value(i.peak_error_pct, "%")
        ),
        None => format!(
            "{}, peak {}",
            fmt_value(i.error_pct, "%"),
            fmt_value(i.peak_error_pct, "%")
        ),
    };
    let recovered = match (b, i.recovered_after_s, &i.interrupted_by) {
        (None, _, _) => "–".to_owned(),
        (_, Some(r), _) => fmt_dur(r),
        (_, None, Some(next)) => format!("not before {next}"),
        (_, None, None) => "not in the run".to_owned(),
    };
    let finding = match b {
        None => "no baseline".to_owned(),
        Some(_) if i.exceeds_tolerance => "FINDING".to_owned(),
        Some(_) => "within tolerance".to_owned(),
    };
    [
        format!("{} ({})", i.fault, i.kind),
        match (b, i.time_to_impact_s) {
            (None, _) => "–".to_owned(),
            (_, Some(t)) => fmt_dur(t),
            (_, None) => "none".to_owned(),
        },
        errors,
        latency_cell(i.p50_ms, b.and_then(|b| b.p50_ms), i.peak_p50_ms),
        latency_cell(i.p99_ms, b.and_then(|b| b.p99_ms), i.peak_p99_ms),
        if b.and_then(|b| b.p99_ms).is_some() {
            format!(
                "{} / ~{} of {}",
                i.failed, i.slower_than_baseline_p99, i.requests
            )
        } else {
            format!("{} / – of {}", i.failed, i.requests)
        },
        i.impact_duration_s
            .map(fmt_dur)
            .unwrap_or_else(|| "–".to_owned()),
        recovered,
        finding,
    ]
}

/// The sentence under the impact table's heading: the baseline and the tolerance.
pub(crate) fn impact_preamble(j: &Journal) -> String {
    let t = &j.impact_tolerance;
    let tol = format!(
        "A fault is a finding when, over its window, errors rise more than {} points over the \
         baseline or p99 reaches more than {}x the baseline's (`impact_tolerance`).",
        fmt_num(t.error_rate_points),
        fmt_num(t.p99_ratio)
    );
    match j.impacts.iter().find_map(|i| i.baseline.as_ref()) {
        Some(b) => format!(
            "Each fault's window runs from its injection to its revert or the end of its \
             impact, whichever is later (never past the next fault's start), against the \
             baseline phase `{}` ({} measured: errors {} ± {} pts, p50 {}, p99 {} ± {}, \
             per-second means). A second counts as impacted beyond three standard deviations \
             of the baseline's. {tol}",
            b.phase,
            fmt_dur(b.seconds),
            fmt_value(b.error_pct, "%"),
            fmt_num(b.error_pct_sd),
            b.p50_ms.map_or("n/a".to_owned(), |v| fmt_value(v, "ms")),
            b.p99_ms.map_or("n/a".to_owned(), |v| fmt_value(v, "ms")),
            b.p99_ms_sd.map_or("n/a".to_owned(), |v| fmt_value(v, "ms")),
        ),
        None => format!(
            "No phase of the run was free of faults and measured, so there is no baseline to \
             compare with: the figures are absolute. {tol}"
        ),
    }
}

/// `2 findings` to follow the verdict, when the impacts found any.
pub(crate) fn findings_suffix(j: &Journal) -> Option<String> {
    match j.findings().count() {
        0 => None,
        1 => Some("1 finding".to_owned()),
        n => Some(format!("{n} findings")),
    }
}

/// Renders the Markdown report.
pub fn render_markdown(j: &Journal) -> String {
    let mut md = String::new();
    let v = verdict(j);
    let mark = if v.good { "✅" } else { "❌" };
    let _ = writeln!(md, "# Gameday report: {}\n", j.run.scenario_name);
    let findings = findings_suffix(j)
        .map(|f| format!(" · **{f}**"))
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "> **Verdict: {mark} {}**{findings} · {}\n>",
        v.label, v.sentence
    );
    let _ = writeln!(
        md,
        "> Exit code {} · run `{}` · {} · {}\n",
        j.run.exit_code,
        j.run.id,
        rfc3339(j.run.started_at),
        fmt_dur(j.duration_s())
    );

    md.push_str("| | |\n|---|---|\n");
    let file = j
        .run
        .scenario_file
        .as_deref()
        .map(|f| format!(" (`{f}`)"))
        .unwrap_or_default();
    let _ = writeln!(md, "| Scenario | {}{} |", cell(&j.run.scenario_name), file);
    if let Some(d) = &j.run.description {
        let _ = writeln!(md, "| Description | {} |", cell(d));
    }
    let _ = writeln!(
        md,
        "| Owner | {} |",
        cell(j.run.owner.as_deref().unwrap_or("_not set_"))
    );
    if !j.run.participants.is_empty() {
        let _ = writeln!(
            md,
            "| Participants | {} |",
            cell(&j.run.participants.join(", "))
        );
    }
    let _ = writeln!(
        md,
        "| Ran | {} → {} ({}) |",
        rfc3339(j.run.started_at),
        rfc3339(j.run.ended_at),
        fmt_dur(j.duration_s())
    );
    if !j.run.tags.is_empty() {
        let _ = writeln!(md, "| Tags | {} |", cell(&j.run.tags.join(", ")));
    }
    let _ = writeln!(md, "| gameday | {} |\n", cell(&j.run.gameday_version));

    // Hypothesis and SLOs per phase.
    md.push_str("## Hypothesis\n\n");
    match &j.run.hypothesis {
        Some(h) => {
            let _ = writeln!(md, "> {}\n", h.replace('\n', "\n> "));
        }
        None => md.push_str("_The scenario states no hypothesis in words; its SLOs follow._\n\n"),
    }
    if j.slos.is_empty() {
        md.push_str("_No SLO was evaluated._\n\n");
    } else {
        let cols = slo_columns(j);
        md.push_str("| SLO | objective |");
        for (_, label) in &cols {
            let _ = write!(md, " {} |", cell(label));
        }
        md.push_str(" verdict |\n|---|---|");
        for _ in &cols {
            md.push_str("---|");
        }
        md.push_str("---|\n");
        for s in &j.slos {
            let _ = write!(
                md,
                "| `{}` ({}) | {} |",
                cell(&s.name),
                s.metric.label(),
                cell(&s.objective)
            );
            for (name, _) in &cols {
                match slo_cell(j, s, name) {
                    Some((ok, t)) => {
                        let _ = write!(md, " {} {} |", if ok { "✅" } else { "❌" }, t);
                    }
                    None => md.push_str(" – |"),
                }
            }
            let _ = writeln!(
                md,
                " {} |",
                if s.passed {
                    "✅ met"
                } else {
                    "❌ **broken**"
                }
            );
        }
        md.push_str("\nValues in brackets: change from the baseline phase.\n\n");
    }

    // Phases side by side.
    if !j.phases.is_empty() {
        md.push_str("## Load by phase\n\n| | ");
        for p in &j.phases {
            let _ = write!(md, "{} | ", cell(&phase_label(p)));
        }
        md.push_str("\n|---|");
        for _ in &j.phases {
            md.push_str("---|");
        }
        md.push('\n');
        let _ = write!(md, "| window |");
        for p in &j.phases {
            let _ = write!(
                md,
                " t+{}s → t+{}s ({}) |",
                p.start_s.round(),
                p.end_s.round(),
                fmt_dur(p.end_s - p.start_s)
            );
        }
        md.push('\n');
        let base = j.baseline();
        for (label, unit, get) in PHASE_METRICS {
            let _ = write!(md, "| {label} |");
            for p in &j.phases {
                match get(p) {
                    Some(v) => {
                        let _ = write!(md, " {}", fmt_value(v, unit));
                        if let Some(b) = base.filter(|b| b.name != p.name).and_then(get) {
                            if !unit.is_empty() {
                                let _ = write!(md, " ({})", delta(v, b, unit));
                            }
                        }
                        md.push_str(" |");
                    }
                    None => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }
        md.push_str("| errors by class |");
        for p in &j.phases {
            let classes: Vec<String> = p
                .stats
                .errors
                .classes()
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            let _ = write!(
                md,
                " {} |",
                if classes.is_empty() {
                    "none".to_owned()
                } else {
                    classes.join(", ")
                }
            );
        }
        md.push_str("\n| dropped by generator |");
        for p in &j.phases {
            let _ = write!(md, " {} |", p.stats.dropped);
        }
        md.push_str("\n\nLatency is of successful requests; brackets: change from baseline.\n\n");
    }

    // Fault timeline.
    md.push_str("## Fault timeline\n\n");
    if j.faults.is_empty() {
        md.push_str("_No fault was injected._\n\n");
    } else {
        md.push_str("| fault | kind | target | hit | injected | ended | lasted | reverted |\n");
        md.push_str("|---|---|---|---|---|---|---|---|\n");
        for f in &j.faults {
            let reverted = if f.irreversible {
                "irreversible (nothing to undo)".to_owned()
            } else if f.reverted {
                "✅ yes".to_owned()
            } else {
                "❌ **NO: run `gameday recover`**".to_owned()
            };
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
                cell(&f.name),
                cell(&f.kind_label()),
                cell(&f.target),
                cell(&f.targets.join(", ")),
                fmt_offset(f.start_s),
                f.end_s
                    .map(fmt_offset)
                    .unwrap_or_else(|| "never".to_owned()),
                f.end_s
                    .map(|e| fmt_dur(e - f.start_s))
                    .unwrap_or_else(|| "–".to_owned()),
                reverted
            );
        }
        md.push('\n');
    }
    if !j.events.is_empty() {
        md.push_str("<details><summary>Every event</summary>\n\n");
        md.push_str(
            "| t | event | phase | fault | targets | message |\n|---|---|---|---|---|---|\n",
        );
        for e in &j.events {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                fmt_offset(e.t_s),
                e.kind.label(),
                cell(e.phase.as_deref().unwrap_or("")),
                cell(e.fault.as_deref().unwrap_or("")),
                cell(&e.targets.join(", ")),
                cell(&e.message)
            );
        }
        md.push_str("\n</details>\n\n");
    }

    // What users felt, per fault.
    if !j.impacts.is_empty() {
        md.push_str("## What users felt, per fault\n\n");
        let _ = writeln!(md, "{}\n", impact_preamble(j));
        md.push('|');
        for h in IMPACT_HEADERS {
            let _ = write!(md, " {h} |");
        }
        md.push_str("\n|");
        for _ in IMPACT_HEADERS {
            md.push_str("---|");
        }
        md.push('\n');
        for i in &j.impacts {
            let c = impact_cells(i);
            let _ = write!(md, "| `{}` ({}) |", cell(&i.fault), cell(&i.kind));
            for (k, text) in c.iter().enumerate().skip(1) {
                if k == c.len() - 1 && i.exceeds_tolerance {
                    let _ = write!(md, " ❌ **{}** |", cell(text));
                } else {
                    let _ = write!(md, " {} |", cell(text));
                }
            }
            md.push('\n');
        }
        md.push('\n');
        for i in j.findings() {
            let _ = writeln!(md, "- `{}`: {}.", cell(&i.fault), i.reasons.join("; "));
        }
        if j.findings().next().is_some() {
            md.push('\n');
        }
    }

    // Recovery.
    md.push_str("## Recovery\n\n");
    if j.recovery.is_empty() {
        md.push_str("_No fault ended during the run, so no recovery time was measured._\n\n");
    } else {
        let n = j.recovery[0].good_seconds;
        let _ = writeln!(
            md,
            "Recovery time: from a fault's end to the start of {n} consecutive seconds back \
             within the SLO.\n\n| fault | SLO | recovered after |\n|---|---|---|"
        );
        for r in &j.recovery {
            let _ = writeln!(
                md,
                "| `{}` | `{}` | {} |",
                cell(&r.fault),
                cell(&r.slo),
                match (r.recovered_after_s, &r.interrupted_by) {
                    (Some(s), _) => fmt_dur(s),
                    (None, Some(next)) => format!("not measured: `{next}` started first"),
                    (None, None) => "❌ **did not recover in the run**".to_owned(),
                }
            );
        }
        md.push('\n');
    }
    if let Some(pb) = &j.playbook {
        let ttr = pb
            .time_to_recover_s
            .map(fmt_dur)
            .unwrap_or_else(|| "did not recover in the run".to_owned());
        let rto = match (pb.time_to_recover_s, pb.rto_s) {
            (Some(t), Some(rto)) if t <= rto => format!(" ✅ within the RTO of {}", fmt_dur(rto)),
            (_, Some(rto)) => format!(" ❌ **over the RTO of {}**", fmt_dur(rto)),
            (_, None) => " (the playbook sets no RTO)".to_owned(),
        };
        let _ = writeln!(
            md,
            "**DR drill, time to recover:** {ttr}{rto} (playbook `{}`).\n",
            pb.name
        );
    }

    // Action items.
    let derived = j
        .action_items
        .iter()
        .filter(|a| a.source == ActionSource::Derived)
        .count();
    let _ = writeln!(
        md,
        "## Action items\n\n{} items: {} from the scenario, {} derived from what broke or what users felt. \
         Fill in owner and due date in the review.\n",
        j.action_items.len(),
        j.action_items.len() - derived,
        derived
    );
    for (i, a) in j.action_items.iter().enumerate() {
        let blank = "_____";
        let _ = writeln!(
            md,
            "{}. [ ] **{}**  \n   priority: **{}** · owner: {} · due: {} · source: {}{}",
            i + 1,
            a.title,
            a.priority.as_deref().unwrap_or(blank),
            a.owner.as_deref().unwrap_or(blank),
            a.due.as_deref().unwrap_or(blank),
            match a.source {
                ActionSource::Scenario => "scenario",
                ActionSource::Derived => "derived",
            },
            // Two trailing spaces: a Markdown line break before the detail.
            if a.detail.is_some() { "  " } else { "" }
        );
        if let Some(d) = &a.detail {
            let _ = writeln!(md, "   {}", d.replace('\n', " "));
        }
    }
    if j.action_items.is_empty() {
        md.push_str("_None: nothing broke and the scenario lists none._\n");
    }
    md.push('\n');

    //
    md.push_str(&r3_r4_markdown(j));

    // Measurement quality and targets.
    let _ = writeln!(md, "## Measurement\n\n{}\n", measurement(j));
    if !j.targets.is_empty() {
        md.push_str("## Targets\n\n");
        for t in &j.targets {
            let _ = writeln!(
                md,
                "- `{}`{}: `{}`",
                t.name,
                t.kind
                    .as_deref()
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default(),
                t.config
            );
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "---\nRendered by gameday {} from `journal.json` (journal_version {}). Re-render with \
         `gameday report journal.json`.",
        env!("CARGO_PKG_VERSION"),
        j.journal_version
    );
    md
}

/// The checklist as Markdown.
fn r3_r4_markdown(j: &Journal) -> String {
    let mut md = String::new();
    let c = r3_r4(j);
    md.push_str("## R-3 / R-4\n\n");
    md.push_str(
        "**R-3**: we run monthly gamedays; the impact is measured, post-gameday actions are \
         defined, and the whole team is involved.\n\n",
    );
    for (ok, text) in &c.r3 {
        let _ = writeln!(md, "- [{}] {}", if *ok { "x" } else { " " }, text);
    }
    md.push_str(
        "\n**R-4**: disaster-recovery protocols and playbooks are defined for every key \
         component.\n\n",
    );
    match &j.playbook {
        None => md.push_str(
            "- [ ] No playbook was exercised by this run. For a DR drill, give the scenario a \
             `playbook` (name, RTO, steps with owners) and confirm each step as it is done.\n",
        ),
        Some(pb) => {
            for (ok, text) in &c.r4 {
                let _ = writeln!(md, "- [{}] {}", if *ok { "x" } else { " " }, text);
            }
            md.push_str(
                "\n| # | step | owner | confirmed by | confirmed at |\n|---|---|---|---|---|\n",
            );
            for (i, s) in pb.steps.iter().enumerate() {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    i + 1,
                    cell(&s.step),
                    cell(s.owner.as_deref().unwrap_or("_____")),
                    cell(s.confirmed_by.as_deref().unwrap_or("❌ not confirmed")),
                    s.confirmed_at
                        .map(rfc3339)
                        .unwrap_or_else(|| "–".to_owned())
                );
            }
        }
    }
    md.push('\n');
    md
}

/// What the measurement is worth, shared by the renderers: windows, untrusted ones, and what
/// the generator itself did (drops, counted resends, stalled seconds).
pub(crate) fn measurement(j: &Journal) -> String {
    let untrusted = j.windows.iter().filter(|w| !w.trusted).count();
    let dropped: u64 = j.windows.iter().map(|w| w.dropped).sum();
    let retries: u64 = j.windows.iter().map(|w| w.retries).sum();
    let stalled = j.windows.iter().filter(|w| w.stalled).count();
    let mut out = format!(
        "{} windows over {:.0} seconds (one second each, shorter where the run or a phase \
         starts off a whole second); {} untrusted (the load generator lagged); {} requests \
         dropped by the generator; {} sent a second time because a reused connection refused \
         them before any byte left (retries, idempotent methods only)",
        j.windows.len(),
        measured_seconds(j),
        untrusted,
        dropped,
        retries
    );
    if stalled > 0 {
        out.push_str(&format!(
            "; {stalled} stalled windows (closed model: requests outstanding and none answered)"
        ));
    }
    out.push('.');
    out
}

/// The checklist, shared by the renderers: each line with whether it is met.
pub(crate) struct Checklist {
    pub r3: Vec<(bool, String)>,
    pub r4: Vec<(bool, String)>,
}

/// Seconds of load the windows cover.
fn measured_seconds(j: &Journal) -> f64 {
    j.windows.iter().map(|w| w.duration_s).sum()
}

/// Works out the checklist from the journal.
pub(crate) fn r3_r4(j: &Journal) -> Checklist {
    let requests: u64 = j.phases.iter().map(|p| p.stats.requests).sum();
    let measured = !j.windows.is_empty() && !j.slos.is_empty();
    let owned = j.action_items.iter().filter(|a| a.has_owner()).count();
    let broke = j.slos.iter().any(|s| !s.passed)
        || j.faults.iter().any(|f| !f.reverted)
        || j.findings().next().is_some();
    let against_baseline = j.impacts.iter().filter(|i| i.baseline.is_some()).count();
    let mut r3 = vec![(
        measured,
        format!(
            "Impact measured: {} requests over {:.0} seconds, {} SLOs evaluated in {} phases{}.",
            requests,
            measured_seconds(j),
            j.slos.len(),
            j.phases.len(),
            match against_baseline {
                0 => String::new(),
                n => format!(
                    ", what users felt compared with the baseline for {n} of {} faults",
                    j.faults.len()
                ),
            }
        ),
    )];
    // An empty list proves nothing: no box is ticked for it, whatever the verdict (a run
    // that broke nothing still owes the review its lessons).
    let items = j.action_items.len();
    let dated = j
        .action_items
        .iter()
        .filter(|a| a.has_owner() && a.due.is_some())
        .count();
    r3.push(if items == 0 {
        (
            false,
            format!(
                "Post-gameday actions defined: none yet{}; write down in the review what this \
                 run taught, even when nothing broke.",
                if broke {
                    ", although an SLO, a revert or what users felt failed"
                } else {
                    ""
                }
            ),
        )
    } else {
        (
            true,
            format!("Post-gameday actions defined: {items} action items ({owned} with an owner)."),
        )
    });
    r3.push((
        items > 0 && dated == items,
        if items == 0 {
            "Every action item has an owner and a due date: there are none to check.".to_owned()
        } else {
            format!(
                "Every action item has an owner and a due date: {dated} of {items} (fill the rest \
                 in the review)."
            )
        },
    ));
    r3.push(if j.run.participants.len() >= 2 {
        (
            true,
            format!("Team involved: {}.", j.run.participants.join(", ")),
        )
    } else {
        (
            false,
            "Team involved: who took part is not recorded in this run; note it in the review."
                .to_owned(),
        )
    });
    let mut r4 = Vec::new();
    if let Some(pb) = &j.playbook {
        let confirmed = pb.steps.iter().filter(|s| s.confirmed_by.is_some()).count();
        r4.push((
            true,
            format!(
                "Playbook `{}` exercised{}.",
                pb.name,
                pb.link
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ),
        ));
        r4.push((
            confirmed == pb.steps.len() && !pb.steps.is_empty(),
            format!(
                "{confirmed} of {} steps confirmed by a person during the drill.",
                pb.steps.len()
            ),
        ));
        let ttr_ok = matches!((pb.time_to_recover_s, pb.rto_s), (Some(t), Some(r)) if t <= r);
        r4.push((
            ttr_ok,
            format!(
                "Time to recover {} against an RTO of {}.",
                pb.time_to_recover_s
                    .map(fmt_dur)
                    .unwrap_or_else(|| "not reached".to_owned()),
                pb.rto_s
                    .map(fmt_dur)
                    .unwrap_or_else(|| "(none set)".to_owned())
            ),
        ));
    }
    Checklist { r3, r4 }
}

/// Renders a comparison of two runs as Markdown.
pub fn render_compare_markdown(c: &RunComparison) -> String {
    let mut md = String::new();
    let regressions = c.regressions().count();
    let improvements = c.improvements().count();
    let _ = writeln!(md, "# Gameday comparison: {}\n", c.scenario);
    let _ = writeln!(
        md,
        "> **{}** · {} regressions, {} improvements (older: {}, newer: {}; changes within {}% \
         count as unchanged)\n",
        if regressions > 0 {
            "❌ REGRESSED"
        } else {
            "✅ NO REGRESSION"
        },
        regressions,
        improvements,
        c.old_run,
        c.new_run,
        c.tolerance_pct
    );
    if let Some(m) = &c.scenario_mismatch {
        let _ = writeln!(md, "**Warning:** {m}; rows are matched by name.\n");
    }
    md.push_str(
        "| SLO | phase | objective | older | newer | change |\n|---|---|---|---|---|---|\n",
    );
    let show = |v: Option<f64>, p: Option<bool>, r: &super::analysis::ComparisonRow| match (v, p) {
        (_, None) => "–".to_owned(),
        (Some(v), Some(p)) => format!("{} {}", if p { "✅" } else { "❌" }, fmt_value(v, &r.unit)),
        (None, Some(p)) => format!("{} {}", if p { "✅" } else { "❌" }, r.missing_value()),
    };
    for r in &c.rows {
        let change = match r.change {
            Change::Regression => "❌ **REGRESSION**".to_owned(),
            Change::Improvement => "✅ improvement".to_owned(),
            other => other.label().to_owned(),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} |",
            cell(&r.slo),
            cell(&r.phase),
            cell(&r.objective),
            show(r.old, r.old_passed, r),
            show(r.new, r.new_passed, r),
            change
        );
    }
    md
}
