//! `gameday plan FILE` (and `run --dry-run`): the resolved timeline with absolute offsets,
//! what each fault would hit now, its blast radius against the cap, and the targets'
//! read-only preflight. Nothing is started, injected or written.

use std::path::Path;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::EXIT_INVALID;
use crate::duration::Dur;
use crate::engine::plan::Plan;
use crate::engine::targets::Targets;
use crate::scenario;
use crate::targets::{Fault, Finding, Resolution, Severity};

/// A fault in the printed plan.
#[derive(Debug, Serialize)]
pub struct FaultLine {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Target.
    pub target: String,
    /// Phase.
    pub phase: String,
    /// Start offset.
    pub start: String,
    /// End offset.
    pub end: String,
    /// Repeat interval.
    pub every: Option<String>,
    /// What it would hit now, or why it cannot be resolved.
    pub resolution: Result<Resolution, String>,
}

/// The whole printed plan.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    /// The scenario's name.
    pub scenario: String,
    /// The timeline.
    pub plan: Plan,
    /// Each fault, resolved.
    pub faults: Vec<FaultLine>,
    /// Preflight findings by target.
    pub findings: Vec<(String, Finding)>,
}

/// Resolves a scenario's plan against its targets, read-only.
pub async fn build(
    file: &Path,
    yes: bool,
) -> Result<PlanReport, scenario::diagnostic::Diagnostics> {
    let loaded = scenario::load(file)?;
    let s = &loaded.scenario;
    let plan = Plan::new(s);
    // No ledger and a throwaway directory that is never written: `plan` has no side effects.
    let targets = Targets::from_scenario(
        s,
        Path::new("/nonexistent-gameday-plan"),
        None,
        &CancellationToken::new(),
        // Without --yes, a context mismatch shows as each fault's resolution error.
        yes,
    )
    .await;
    let mut faults = Vec::new();
    let mut objs: Vec<(String, std::sync::Arc<dyn Fault>)> = Vec::new();
    for pf in plan.faults() {
        let resolution = match targets.fault(&pf.name, &pf.entry) {
            Ok(f) => {
                let r = f.resolve().await.map_err(|e| e.to_string());
                objs.push((pf.target.clone(), f));
                r
            }
            Err(e) => Err(e.to_string()),
        };
        faults.push(FaultLine {
            name: pf.name.clone(),
            kind: pf.kind.clone(),
            target: pf.target.clone(),
            phase: pf.phase.clone(),
            start: Dur(pf.start).to_string(),
            end: Dur(pf.end).to_string(),
            every: pf.every.map(|e| Dur(e).to_string()),
            resolution,
        });
    }
    let mut findings = Vec::new();
    for t in targets.all() {
        let fs: Vec<&dyn Fault> = objs
            .iter()
            .filter(|(n, _)| n == t.name())
            .map(|(_, f)| f.as_ref())
            .collect();
        match t.preflight(&fs).await {
            Ok(list) => findings.extend(list.into_iter().map(|f| (t.name().to_string(), f))),
            Err(e) => findings.push((
                t.name().into(),
                Finding {
                    severity: Severity::Error,
                    message: e.to_string(),
                },
            )),
        }
    }
    Ok(PlanReport {
        scenario: s.metadata.name.clone(),
        plan,
        faults,
        findings,
    })
}

/// Prints the plan. Exit 0, 2 on invalid input, 5 when preflight finds an error.
pub async fn run(file: &Path, json: bool, yes: bool) -> i32 {
    let report = match build(file, yes).await {
        Ok(r) => r,
        Err(d) => {
            eprintln!("{d}");
            return EXIT_INVALID;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&report));
    }
    let blocked = report
        .findings
        .iter()
        .any(|(_, f)| f.severity == Severity::Error)
        || report.faults.iter().any(|f| f.resolution.is_err());
    if blocked {
        5
    } else {
        0
    }
}

/// The plan as text for people.
pub fn render(r: &PlanReport) -> String {
    let mut o = String::new();
    o.push_str(&format!(
        "plan for `{}`: {} phase(s), {} in all (dry run: nothing is touched)\n\n",
        r.scenario,
        r.plan.phases.len(),
        Dur(r.plan.total)
    ));
    // comfy-table sizes each column to its longest cell: hand padding to fixed widths broke
    // the columns on a long phase name.
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(["PHASE", "ROLE", "START", "LENGTH", "FAULTS"]);
    for p in &r.plan.phases {
        table.add_row([
            p.name.clone(),
            format!("{:?}", p.role).to_lowercase(),
            Dur(p.start).to_string(),
            Dur(p.duration).to_string(),
            p.faults.len().to_string(),
        ]);
    }
    for i in 2..5 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    for line in table.lines() {
        o.push_str(line.trim_end());
        o.push('\n');
    }
    o.push('\n');
    if r.faults.is_empty() {
        o.push_str("no faults\n");
    }
    for f in &r.faults {
        let every = f
            .every
            .as_ref()
            .map(|e| format!(", every {e}"))
            .unwrap_or_default();
        o.push_str(&format!(
            "fault `{}` ({} on {}), phase `{}`: {} -> {}{}\n",
            f.name, f.kind, f.target, f.phase, f.start, f.end, every
        ));
        match &f.resolution {
            Ok(res) => {
                let cap = res.cap.map(|c| format!(", cap {c}")).unwrap_or_default();
                o.push_str(&format!(
                    "  would hit {} of {} eligible{}:\n",
                    res.targets.len(),
                    res.eligible,
                    cap
                ));
                for t in &res.targets {
                    o.push_str(&format!("    - {t}\n"));
                }
                for n in &res.notes {
                    o.push_str(&format!("  note: {n}\n"));
                }
            }
            Err(e) => o.push_str(&format!("  cannot resolve: {e}\n")),
        }
    }
    if !r.findings.is_empty() {
        o.push_str("\npreflight:\n");
        for (t, f) in &r.findings {
            o.push_str(&format!(
                "  [{}] {t}: {}\n",
                match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                f.message
            ));
        }
    }
    o
}
