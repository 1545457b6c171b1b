//! The summary printed after `gameday run`, before the verdict: the load per phase and what
//! users felt per fault as two compact tables (in the manner of oha's summary), then the top
//! findings with their suggested owners. Rendered from the [`Journal`] like every other
//! report, so the terminal and `report.md` never disagree; the tables come from
//! `comfy-table`, which sizes each column to its longest cell.

use std::fmt::Write as _;

use comfy_table::{presets, CellAlignment, Table};

use super::analysis::{fmt_num, fmt_value};
use super::impact::owner_for;
use super::journal::{FaultImpact, Journal, UNASSIGNED};
use super::markdown::{delta, fmt_dur};

/// How many findings the summary lists; the report has them all.
const TOP_FINDINGS: usize = 3;

/// A table's lines without trailing blanks (the `NOTHING` preset pads every cell).
fn push_table(out: &mut String, table: &Table) {
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The worst findings first: by error points over baseline, then by p99 ratio.
fn worst_first(j: &Journal) -> Vec<&FaultImpact> {
    let mut f: Vec<&FaultImpact> = j.findings().collect();
    let key = |i: &FaultImpact| {
        (
            i.error_points_over_baseline().unwrap_or(0.0),
            i.p99_ratio().unwrap_or(0.0),
        )
    };
    f.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0).then(kb.1.total_cmp(&ka.1))
    });
    f
}

/// One fault's row, shorter than the report's (no peaks, which the report has).
fn impact_row(i: &FaultImpact) -> [String; 12] {
    let b = i.baseline.as_ref();
    let dash = || "–".to_owned();
    [
        i.fault.clone(),
        i.kind.clone(),
        match (b, i.time_to_impact_s) {
            (None, _) => dash(),
            (_, Some(t)) => fmt_dur(t),
            (_, None) => "none".to_owned(),
        },
        fmt_value(i.error_pct, "%"),
        b.map_or_else(dash, |b| delta(i.error_pct, b.error_pct, "%")),
        i.p99_ms.map_or_else(dash, |v| fmt_value(v, "ms")),
        i.p99_ratio()
            .map_or_else(dash, |r| format!("{}x", fmt_num(r))),
        format!("{}/{}", i.failed, i.requests),
        b.and_then(|b| b.p99_ms)
            .map_or_else(dash, |_| format!("~{}", i.slower_than_baseline_p99)),
        i.impact_duration_s.map_or_else(dash, fmt_dur),
        match (b, i.recovered_after_s, &i.interrupted_by) {
            (None, _, _) => dash(),
            (_, Some(r), _) => fmt_dur(r),
            (_, None, Some(_)) => "next fault first".to_owned(),
            (_, None, None) => "not in the run".to_owned(),
        },
        match b {
            None => "no baseline".to_owned(),
            Some(_) if i.exceeds_tolerance => "FINDING".to_owned(),
            Some(_) => "ok".to_owned(),
        },
    ]
}

/// The summary: phases, impacts per fault and the top findings. Empty sections are left
/// out (a run stopped before its first phase prints nothing here).
pub fn render_terminal(j: &Journal) -> String {
    let mut out = String::new();
    if !j.phases.is_empty() {
        out.push_str("Load by phase\n");
        let base = j.baseline();
        let mut t = Table::new();
        t.load_preset(presets::NOTHING).set_header([
            "PHASE",
            "ROLE",
            "REQUESTS",
            "RATE",
            "ERRORS",
            "P50",
            "P99",
            "P99 VS BASELINE",
        ]);
        for p in &j.phases {
            let lat = p.stats.latency_ms;
            let p99 = lat.map(|l| l.p99);
            let vs = match (
                p99,
                base.filter(|b| b.name != p.name)
                    .and_then(|b| b.stats.latency_ms),
            ) {
                (Some(v), Some(b)) => delta(v, b.p99, "ms"),
                _ => "–".to_owned(),
            };
            t.add_row([
                p.name.clone(),
                p.role.clone(),
                p.stats.requests.to_string(),
                format!("{}/s", fmt_num(p.stats.rate)),
                fmt_value(p.stats.error_pct, "%"),
                lat.map_or("–".to_owned(), |l| fmt_value(l.p50, "ms")),
                p99.map_or("–".to_owned(), |v| fmt_value(v, "ms")),
                vs,
            ]);
        }
        for i in 2..7 {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        push_table(&mut out, &t);
        out.push('\n');
    }
    if !j.impacts.is_empty() {
        let base = j.impacts.iter().find_map(|i| i.baseline.as_ref());
        match base {
            Some(b) => {
                let _ = writeln!(
                    out,
                    "What users felt, per fault, against phase `{}` (per-second means; SLOWER: \
                     successes slower than its p99)",
                    b.phase
                );
            }
            None => {
                out.push_str("What users felt, per fault (no fault-free phase to compare with)\n")
            }
        }
        let mut t = Table::new();
        t.load_preset(presets::NOTHING).set_header([
            "FAULT",
            "KIND",
            "IMPACT AFTER",
            "ERRORS",
            "VS BASELINE",
            "P99",
            "VS BASELINE",
            "FAILED",
            "SLOWER",
            "LASTED",
            "RECOVERED",
            "FINDING",
        ]);
        for i in &j.impacts {
            t.add_row(impact_row(i));
        }
        for c in 2..10 {
            if let Some(c) = t.column_mut(c) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        push_table(&mut out, &t);
        out.push('\n');
    }
    let worst = worst_first(j);
    if !worst.is_empty() {
        let _ = writeln!(
            out,
            "Findings: {} fault(s) hurt users beyond the impact tolerance (+{} pts errors, {}x p99)",
            worst.len(),
            fmt_num(j.impact_tolerance.error_rate_points),
            fmt_num(j.impact_tolerance.p99_ratio)
        );
        for (n, i) in worst.iter().take(TOP_FINDINGS).enumerate() {
            let owner = owner_for(&j.owners, i).map_or(UNASSIGNED, |(o, _)| o);
            let _ = writeln!(
                out,
                "  {}. {} ({}): {}; owner: {owner}",
                n + 1,
                i.fault,
                i.kind,
                i.reasons.join("; ")
            );
        }
        if worst.len() > TOP_FINDINGS {
            let _ = writeln!(
                out,
                "  ... and {} more in report.md",
                worst.len() - TOP_FINDINGS
            );
        }
        out.push('\n');
    }
    out
}
