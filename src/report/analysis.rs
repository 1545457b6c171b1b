//! Pure analysis of a [`Journal`]: recovery times, action items derived from what broke (and
//! from what users felt, via [`super::impact`]), and the comparison of two runs of the same
//! scenario.
//!
//! Nothing here does IO or reads a clock, so every rule can be pinned by a unit test with a
//! handful of hand-made windows. The engine calls [`compute_recovery`],
//! [`time_to_recover`] and [`derive_action_items`] to fill the journal; `gameday report
//! --compare` calls [`compare`].

use std::fmt::Write as _;

use serde::Serialize;

use super::journal::{
    ActionItem, ActionSource, Comparison, FaultRecord, Journal, SloMetric, SloRecord, WindowRecord,
    ROLE_BASELINE, ROLE_RECOVERY,
};

pub use super::fmt::fmt_num;
use super::journal::first_good_stretch;
/// Consecutive good seconds that count as "recovered" when the scenario says nothing.
pub use crate::scenario::model::DEFAULT_GOOD_SECONDS;

impl SloMetric {
    /// The metric's value over one window, when the window can tell (`None` for an empty
    /// window, for latency without a successful request, and for run-level metrics such as
    /// recovery time).
    pub fn observe_window(self, w: &WindowRecord) -> Option<f64> {
        let lat = w.latency_ms;
        match self {
            SloMetric::LatencyP50Ms => lat.map(|l| l.p50),
            SloMetric::LatencyP90Ms => lat.map(|l| l.p90),
            SloMetric::LatencyP99Ms => lat.map(|l| l.p99),
            SloMetric::LatencyP999Ms => lat.map(|l| l.p999),
            SloMetric::LatencyMaxMs => lat.map(|l| l.max),
            SloMetric::LatencyMeanMs => lat.map(|l| l.mean),
            SloMetric::ErrorRatePct => w.error_pct(),
            SloMetric::AvailabilityPct => w.availability_pct(),
            SloMetric::ThroughputRps => w.throughput_rps(),
            SloMetric::RecoveryTimeS | SloMetric::ProbeOkPct => None,
        }
    }

    /// Whether the metric can be evaluated second by second (and so has a recovery time).
    pub fn is_windowed(self) -> bool {
        !matches!(self, SloMetric::RecoveryTimeS | SloMetric::ProbeOkPct)
    }
}

/// Whether one window is within an SLO. A window without data is not (silence is not
/// health). An untrusted window (the generator lagged) is judged on its numbers like any
/// other, as the engine's own verdicts do, so that the report never contradicts the
/// verdict; the report lists untrusted seconds under "Measurement" instead.
fn window_good(w: &WindowRecord, metric: SloMetric, cmp: Comparison, threshold: f64) -> bool {
    metric
        .observe_window(w)
        .is_some_and(|v| cmp.holds(v, threshold))
}

/// Seconds from `fault_end_s` until the SLO held for `good_seconds` seconds of consecutive windows,
/// measured to the start of that run of good windows (0 when it held right away).
///
/// The search starts at the first window that starts at or after the fault's end (as the
/// engine's own recovery check does), so no second that still held the fault counts. A gap
/// in the windows (a missing second) breaks a run, and so does an empty window. Returns `None` when the SLO never held long enough before the windows ran out.
/// `windows` must be in time order.
pub fn recovery_time(
    windows: &[WindowRecord],
    fault_end_s: f64,
    metric: SloMetric,
    cmp: Comparison,
    threshold: f64,
    good_seconds: u32,
) -> Option<f64> {
    let after = windows.iter().filter(|w| w.t_s + 1e-6 >= fault_end_s);
    first_good_stretch(after, good_seconds, |w| {
        window_good(w, metric, cmp, threshold)
    })
    .map(|start| (start - fault_end_s).max(0.0))
}

/// Recovery of every windowed SLO after every fault that ended, for the journal's
/// `recovery` list. Only the seconds before the next fault starts count: when the SLO has
/// not held again by then, the record says which fault interrupted the measurement rather
/// than charging that fault's damage to this one.
pub fn compute_recovery(journal: &Journal, good_seconds: u32) -> Vec<super::RecoveryRecord> {
    let mut out = Vec::new();
    for fault in &journal.faults {
        let Some(end) = fault.end_s else { continue };
        // The next fault to start after this one ended: seconds from then on belong to it.
        let next = journal
            .faults
            .iter()
            .filter(|f| f.start_s > end)
            .min_by(|a, b| a.start_s.total_cmp(&b.start_s));
        let until = next.map_or(f64::INFINITY, |f| f.start_s);
        let windows: Vec<WindowRecord> = journal
            .windows
            .iter()
            .filter(|w| w.end_s() <= until + 1e-6)
            .cloned()
            .collect();
        for slo in journal.slos.iter().filter(|s| s.metric.is_windowed()) {
            let after = recovery_time(
                &windows,
                end,
                slo.metric,
                slo.comparison,
                slo.threshold,
                good_seconds,
            );
            out.push(super::RecoveryRecord {
                fault: fault.name.clone(),
                slo: slo.name.clone(),
                recovered_after_s: after,
                good_seconds,
                interrupted_by: after
                    .is_none()
                    .then(|| next.map(|f| f.name.clone()))
                    .flatten(),
            });
        }
    }
    out
}

/// Time to recover for a DR drill: seconds from the first fault's start (the disaster) to
/// the start of the first run of `good_seconds` windows in which every windowed SLO holds,
/// searched from the first window where any SLO broke. `Some(0.0)` when nothing broke;
/// `None` when there was no fault or service never came back within the run.
pub fn time_to_recover(journal: &Journal, good_seconds: u32) -> Option<f64> {
    let start = journal
        .faults
        .iter()
        .map(|f| f.start_s)
        .min_by(f64::total_cmp)?;
    let slos: Vec<&SloRecord> = journal
        .slos
        .iter()
        .filter(|s| s.metric.is_windowed())
        .collect();
    let all_good = |w: &WindowRecord| {
        slos.iter()
            .all(|s| window_good(w, s.metric, s.comparison, s.threshold))
    };
    let after: Vec<&WindowRecord> = journal
        .windows
        .iter()
        .filter(|w| w.end_s() > start)
        .collect();
    let Some(first_bad) = after.iter().position(|w| !all_good(w)) else {
        return Some(0.0);
    };
    first_good_stretch(after[first_bad..].iter().copied(), good_seconds, all_good)
        .map(|recovered| (recovered - start).max(0.0))
}

/// Fills what the report derives from the measurements, in one call for the engine once
/// windows, phases, SLOs and faults are in: `recovery` (for every fault and windowed SLO),
/// `impacts` (what users felt per fault, against `impact_tolerance`), the playbook's
/// `time_to_recover_s`, and the derived action items (replacing any derived
/// ones already there, so calling it twice changes nothing).
pub fn analyse(journal: &mut Journal, good_seconds: u32) {
    journal.recovery = compute_recovery(journal, good_seconds);
    journal.impacts = super::impact::compute_impacts(journal, good_seconds);
    if journal.playbook.is_some() {
        let ttr = time_to_recover(journal, good_seconds);
        if let Some(pb) = journal.playbook.as_mut() {
            pb.time_to_recover_s = ttr;
        }
    }
    journal
        .action_items
        .retain(|a| a.source != ActionSource::Derived);
    let derived = derive_action_items(journal);
    journal.action_items.extend(derived);
}

/// Formats a value with its unit, with precision that suits the magnitude.
pub fn fmt_value(v: f64, unit: &str) -> String {
    let n = fmt_num(v);
    match unit {
        "%" => format!("{n}%"),
        "" => n,
        _ => format!("{n} {unit}"),
    }
}

/// How far an observed value is from the objective, in words ("3.2x the threshold",
/// "1.4 points short").
pub fn shortfall(slo: &SloRecord, observed: f64) -> String {
    let unit = slo.metric.unit();
    if slo.comparison.lower_is_better() {
        let over = observed - slo.threshold;
        // A difference of percentages is in points.
        let over = if unit == "%" {
            format!("{} points over", fmt_num(over))
        } else {
            format!("{} over", fmt_value(over, unit))
        };
        if slo.threshold > 0.0 && observed / slo.threshold >= 1.5 {
            format!("{:.1}x the threshold, {over}", observed / slo.threshold)
        } else {
            over
        }
    } else {
        let under = slo.threshold - observed;
        if unit == "%" {
            format!("{} points short", fmt_num(under))
        } else {
            format!("{} short", fmt_value(under, unit))
        }
    }
}

/// Faults active during window `w` (injected before it ended and not ended before it began).
fn active_during<'a>(faults: &'a [FaultRecord], w: &WindowRecord) -> Vec<&'a FaultRecord> {
    faults
        .iter()
        .filter(|f| f.start_s <= w.end_s() && f.end_s.is_none_or(|e| w.t_s < e))
        .collect()
}

/// The fault to blame for a bad window, as the words that follow "broke": "during X" for
/// the faults active then, else "after X ended" for the one that ended most recently.
fn blame(faults: &[FaultRecord], w: &WindowRecord) -> Option<String> {
    let t_s = w.t_s;
    let active = active_during(faults, w);
    if !active.is_empty() {
        return Some(format!(
            "during {}",
            active
                .iter()
                .map(|f| format!("`{}` ({})", f.name, f.kind))
                .collect::<Vec<_>>()
                .join(" + ")
        ));
    }
    faults
        .iter()
        .filter(|f| f.end_s.is_some_and(|e| e <= t_s))
        .max_by(|a, b| a.end_s.unwrap_or(0.0).total_cmp(&b.end_s.unwrap_or(0.0)))
        .map(|f| format!("after `{}` ({}) ended", f.name, f.kind))
}

/// The worst window of a phase for an SLO, and its value.
fn worst_window<'a>(
    journal: &'a Journal,
    slo: &SloRecord,
    start_s: f64,
    end_s: f64,
) -> Option<(&'a WindowRecord, f64)> {
    journal
        .windows
        .iter()
        .filter(|w| w.t_s >= start_s && w.t_s < end_s && w.trusted)
        .filter_map(|w| slo.metric.observe_window(w).map(|v| (w, v)))
        .max_by(|a, b| {
            if slo.comparison.lower_is_better() {
                a.1.total_cmp(&b.1)
            } else {
                b.1.total_cmp(&a.1)
            }
        })
}

/// Action items derived from what broke: one per SLO per phase where it failed (which SLO,
/// by how much, during which fault), one per fault whose revert failed, one per SLO that
/// never recovered (unless its recovery phase already says so), one per fault whose impact
/// on users (`journal.impacts`) is beyond tolerance (see [`super::impact`]), and one when
/// the measurement itself was not trusted. Owner and due date are left for the review to fill;
/// the priority is a suggestion: P1 for a broken steady state, a failed revert, no recovery
/// or an SLO missed by 2x or more; P2 for other misses; P3 for measurement quality.
pub fn derive_action_items(journal: &Journal) -> Vec<ActionItem> {
    let mut items = Vec::new();
    let mut recovery_flagged = Vec::new();
    for slo in &journal.slos {
        for res in slo.per_phase.iter().filter(|r| !r.passed) {
            let phase = journal.phase(&res.phase);
            let role = phase.map(|p| p.role.as_str()).unwrap_or("");
            let unit = slo.metric.unit();
            // Run-level results (recovery time) carry a pseudo-phase such as `all`.
            let where_ = match phase {
                Some(_) => format!("in phase `{}`", res.phase),
                None => "over the run".to_owned(),
            };
            let mut detail = String::new();
            let severe = match res.observed {
                Some(obs) => {
                    let _ = write!(
                        detail,
                        "{} was {} {where_} against the objective {} ({}).",
                        slo.metric.label(),
                        fmt_value(obs, unit),
                        slo.objective,
                        shortfall(slo, obs)
                    );
                    if slo.comparison.lower_is_better() {
                        slo.threshold <= 0.0 || obs >= 2.0 * slo.threshold
                    } else {
                        // A 100-point scale: missing availability by a whole point is big.
                        slo.threshold - obs >= 1.0
                    }
                }
                None if slo.metric == SloMetric::RecoveryTimeS => {
                    detail.push_str(
                        "At least one fault was not followed by enough good seconds in a row \
                         before the run ended: the service did not recover in the run.",
                    );
                    true
                }
                None if slo.metric == SloMetric::ProbeOkPct => {
                    let _ = write!(detail, "The probe was not read {where_}.");
                    true
                }
                None => {
                    let _ = write!(
                        detail,
                        "{} could not be measured {where_} (no successful request).",
                        slo.metric.label(),
                    );
                    true
                }
            };
            let mut culprit = None;
            if let Some(p) = phase {
                if let Some((w, v)) = worst_window(journal, slo, p.start_s, p.end_s) {
                    culprit = blame(&journal.faults, w);
                    // Tenths: a window cut at a phase start begins off a whole second.
                    let _ = write!(
                        detail,
                        " Worst second: {} at t={}s",
                        fmt_value(v, unit),
                        (w.t_s * 10.0).round() / 10.0
                    );
                    match &culprit {
                        Some(c) => {
                            let _ = write!(detail, ", {c}.");
                        }
                        None => detail.push('.'),
                    }
                }
            }
            let (title, priority) = if slo.metric == SloMetric::RecoveryTimeS {
                recovery_flagged.push(slo.name.clone());
                (
                    format!(
                        "`{}`: recovery after the faults was too slow: make it faster",
                        slo.name
                    ),
                    "P1",
                )
            } else if role == ROLE_BASELINE {
                (
                    format!(
                        "`{}` breaks its SLO before any fault: fix the steady state first",
                        slo.name
                    ),
                    "P1",
                )
            } else if role == ROLE_RECOVERY {
                recovery_flagged.push(slo.name.clone());
                (
                    format!(
                        "`{}` stayed out of SLO after the faults ended: make recovery faster",
                        slo.name
                    ),
                    "P1",
                )
            } else {
                let during = culprit.unwrap_or_else(|| format!("during phase `{}`", res.phase));
                (
                    format!(
                        "`{}` ({}) broke {}: make the service tolerate it",
                        slo.name,
                        slo.metric.label(),
                        during
                    ),
                    if severe { "P1" } else { "P2" },
                )
            };
            items.push(ActionItem {
                title,
                owner: None,
                priority: Some(priority.to_owned()),
                due: None,
                source: ActionSource::Derived,
                detail: Some(detail),
            });
        }
    }
    for f in journal.faults.iter().filter(|f| !f.reverted) {
        items.push(ActionItem {
            title: format!(
                "Revert of `{}` ({}) failed: check {} by hand and run `gameday recover`",
                f.name,
                f.kind,
                if f.targets.is_empty() {
                    f.target.clone()
                } else {
                    f.targets.join(", ")
                }
            ),
            owner: None,
            priority: Some("P1".to_owned()),
            due: None,
            source: ActionSource::Derived,
            detail: Some(format!(
                "The fault was injected at t={}s into target `{}` and the runner could not \
                 undo it; the ledger still holds its undo record.",
                f.start_s.round(),
                f.target
            )),
        });
    }
    for r in journal
        .recovery
        .iter()
        .filter(|r| r.recovered_after_s.is_none() && r.interrupted_by.is_none())
    {
        if recovery_flagged.contains(&r.slo) {
            continue;
        }
        recovery_flagged.push(r.slo.clone());
        items.push(ActionItem {
            title: format!(
                "`{}` did not recover within the run after `{}` ended",
                r.slo, r.fault
            ),
            owner: None,
            priority: Some("P1".to_owned()),
            due: None,
            source: ActionSource::Derived,
            detail: Some(format!(
                "No run of {} consecutive seconds within the SLO was measured after the fault \
                 ended; lengthen the recovery phase or find what keeps it degraded.",
                r.good_seconds
            )),
        });
    }
    // What users felt: a fault beyond `impact_tolerance` is a finding whatever the SLOs
    // said (an SLO item may name the same fault; this one carries the users' side).
    for i in journal.impacts.iter().filter(|i| i.exceeds_tolerance) {
        items.push(super::impact::impact_action_item(
            i,
            &journal.impact_tolerance,
            &journal.owners,
            &journal.windows,
        ));
    }
    let untrusted = journal.windows.iter().filter(|w| !w.trusted).count();
    let dropped: u64 = journal.windows.iter().map(|w| w.dropped).sum();
    if untrusted > 0 || dropped > 0 {
        items.push(ActionItem {
            title: "Make the measurement trustworthy: the load generator fell behind".to_owned(),
            owner: None,
            priority: Some("P3".to_owned()),
            due: None,
            source: ActionSource::Derived,
            detail: Some(format!(
                "{untrusted} of {} seconds were marked untrusted and {dropped} requests were \
                 dropped by the generator; run it with more headroom (fewer other processes, \
                 a lower rate or more connections) so the numbers hold up in review.",
                journal.windows.len()
            )),
        });
    }
    items
}

/// The direction of a change between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Worse than before: newly failing, or worse by more than the tolerance.
    Regression,
    /// Better than before: newly passing, or better by more than the tolerance.
    Improvement,
    /// Within the tolerance.
    Unchanged,
    /// Only in the newer run.
    Added,
    /// Only in the older run.
    Removed,
}

impl Change {
    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Change::Regression => "REGRESSION",
            Change::Improvement => "improvement",
            Change::Unchanged => "unchanged",
            Change::Added => "new",
            Change::Removed => "removed",
        }
    }
}

/// One SLO in one phase (or one recovery time), old run against new.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonRow {
    /// The SLO's name.
    pub slo: String,
    /// The phase's name, or `recovery after <fault>` for recovery times.
    pub phase: String,
    /// The unit of `old` and `new`.
    pub unit: String,
    /// The objective as written.
    pub objective: String,
    /// Value in the older run.
    pub old: Option<f64>,
    /// Value in the newer run.
    pub new: Option<f64>,
    /// Met in the older run.
    pub old_passed: Option<bool>,
    /// Met in the newer run.
    pub new_passed: Option<bool>,
    /// What changed.
    pub change: Change,
}

impl ComparisonRow {
    /// What an absent value means in this row: no recovery for recovery times, no data
    /// otherwise.
    pub fn missing_value(&self) -> &'static str {
        if self.unit == "s" {
            "not recovered"
        } else {
            "no data"
        }
    }
}

/// Two runs of a scenario side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunComparison {
    /// The older run's id and start.
    pub old_run: String,
    /// The newer run's id and start.
    pub new_run: String,
    /// The scenario name (the newer run's).
    pub scenario: String,
    /// Set when the two journals are of differently named scenarios: the comparison is
    /// still made, by SLO and phase name, but may mean little.
    pub scenario_mismatch: Option<String>,
    /// The relative change, percent, below which a value counts as unchanged.
    pub tolerance_pct: f64,
    /// Every SLO per phase and every recovery time.
    pub rows: Vec<ComparisonRow>,
}

impl RunComparison {
    /// Rows that got worse.
    pub fn regressions(&self) -> impl Iterator<Item = &ComparisonRow> {
        self.rows.iter().filter(|r| r.change == Change::Regression)
    }

    /// Rows that got better.
    pub fn improvements(&self) -> impl Iterator<Item = &ComparisonRow> {
        self.rows.iter().filter(|r| r.change == Change::Improvement)
    }
}

/// The relative change below which two values count as the same, percent.
pub const DEFAULT_TOLERANCE_PCT: f64 = 10.0;

/// The size against which a change of an SLO's value is judged: the threshold for
/// "at most" objectives, and the error budget (100 minus the threshold) for "at least"
/// percentages such as availability, where 99.9 to 99.0 is a big move.
fn change_scale(slo: &SloRecord) -> f64 {
    if !slo.comparison.lower_is_better() && slo.metric.unit() == "%" {
        (100.0 - slo.threshold).abs()
    } else {
        slo.threshold.abs()
    }
}

/// Classifies a change. A pass turning into a fail is always a regression (and the reverse
/// an improvement); otherwise the value must move by more than `tolerance_pct` of the old
/// value and by more than 5% of `scale` (see [`change_scale`]), so that noise well inside
/// the objective (a p99 of 14 ms becoming 19 ms against 150 ms) is not called a
/// regression.
fn classify(
    old: Option<f64>,
    new: Option<f64>,
    old_passed: Option<bool>,
    new_passed: Option<bool>,
    lower_is_better: bool,
    scale: f64,
    tolerance_pct: f64,
) -> Change {
    match (old_passed, new_passed) {
        (None, None) => return Change::Unchanged,
        (None, Some(_)) => return Change::Added,
        (Some(_), None) => return Change::Removed,
        (Some(true), Some(false)) => return Change::Regression,
        (Some(false), Some(true)) => return Change::Improvement,
        _ => {}
    }
    let (Some(o), Some(n)) = (old, new) else {
        return Change::Unchanged;
    };
    let delta = n - o;
    let rel = if o.abs() > f64::EPSILON {
        delta.abs() / o.abs() * 100.0
    } else if delta.abs() > f64::EPSILON {
        f64::INFINITY
    } else {
        0.0
    };
    if rel <= tolerance_pct || delta.abs() <= scale.abs() * 0.05 {
        return Change::Unchanged;
    }
    if (delta > 0.0) == lower_is_better {
        Change::Regression
    } else {
        Change::Improvement
    }
}

/// Compares two runs of the same scenario: every SLO in every phase, matched by name, and
/// every recovery time, matched by fault and SLO.
pub fn compare(old: &Journal, new: &Journal, tolerance_pct: f64) -> RunComparison {
    let mut rows = Vec::new();
    let find_old = |slo: &str| old.slos.iter().find(|s| s.name == slo);
    for slo in &new.slos {
        let o = find_old(&slo.name);
        let mut phases: Vec<&str> = slo.per_phase.iter().map(|r| r.phase.as_str()).collect();
        if let Some(o) = o {
            for r in &o.per_phase {
                if !phases.contains(&r.phase.as_str()) {
                    phases.push(&r.phase);
                }
            }
        }
        for phase in phases {
            let nr = slo.per_phase.iter().find(|r| r.phase == phase);
            let or = o.and_then(|o| o.per_phase.iter().find(|r| r.phase == phase));
            let (old_v, old_p) = (or.and_then(|r| r.observed), or.map(|r| r.passed));
            let (new_v, new_p) = (nr.and_then(|r| r.observed), nr.map(|r| r.passed));
            rows.push(ComparisonRow {
                slo: slo.name.clone(),
                phase: phase.to_owned(),
                unit: slo.metric.unit().to_owned(),
                objective: slo.objective.clone(),
                old: old_v,
                new: new_v,
                old_passed: old_p,
                new_passed: new_p,
                change: classify(
                    old_v,
                    new_v,
                    old_p,
                    new_p,
                    slo.comparison.lower_is_better(),
                    change_scale(slo),
                    tolerance_pct,
                ),
            });
        }
    }
    for o in old
        .slos
        .iter()
        .filter(|o| !new.slos.iter().any(|n| n.name == o.name))
    {
        for r in &o.per_phase {
            rows.push(ComparisonRow {
                slo: o.name.clone(),
                phase: r.phase.clone(),
                unit: o.metric.unit().to_owned(),
                objective: o.objective.clone(),
                old: r.observed,
                new: None,
                old_passed: Some(r.passed),
                new_passed: None,
                change: Change::Removed,
            });
        }
    }
    for nr in new.recovery.iter().filter(|r| r.interrupted_by.is_none()) {
        let Some(or) = old
            .recovery
            .iter()
            .find(|o| o.fault == nr.fault && o.slo == nr.slo && o.interrupted_by.is_none())
        else {
            continue;
        };
        // Not recovering at all is a pass/fail of its own.
        let old_p = Some(or.recovered_after_s.is_some());
        let new_p = Some(nr.recovered_after_s.is_some());
        rows.push(ComparisonRow {
            slo: nr.slo.clone(),
            phase: format!("recovery after {}", nr.fault),
            unit: "s".to_owned(),
            objective: format!("{} good seconds in a row", nr.good_seconds),
            old: or.recovered_after_s,
            new: nr.recovered_after_s,
            old_passed: old_p,
            new_passed: new_p,
            // A 1 s floor (5% of 20 s) keeps the jitter of one-second windows out.
            change: classify(
                or.recovered_after_s,
                nr.recovered_after_s,
                old_p,
                new_p,
                true,
                20.0,
                tolerance_pct,
            ),
        });
    }
    RunComparison {
        old_run: format!("{} ({})", old.run.id, rfc3339(old.run.started_at)),
        new_run: format!("{} ({})", new.run.id, rfc3339(new.run.started_at)),
        scenario: new.run.scenario_name.clone(),
        scenario_mismatch: (old.run.scenario_name != new.run.scenario_name).then(|| {
            format!(
                "the older run is of scenario `{}`, the newer of `{}`",
                old.run.scenario_name, new.run.scenario_name
            )
        }),
        tolerance_pct,
        rows,
    }
}

/// RFC 3339 text of an instant, for headers.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Decodes a phase's serialized HdrHistogram (V2 or V2-deflate, base64; microsecond
/// values). `None` when the phase has none or it does not decode: the report then simply
/// leaves the phase out of the distribution chart.
pub fn phase_histogram(stats: &super::PhaseStats) -> Option<hdrhistogram::Histogram<u64>> {
    use base64::Engine as _;
    let b64 = stats.histogram_b64.as_deref()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::journal::*;

    fn w(t: f64, p99: f64) -> WindowRecord {
        WindowRecord {
            t_s: t,
            duration_s: 1.0,
            requests: 100,
            ok: 100,
            dropped: 0,
            late: 0,
            retries: 0,
            stalled: false,
            rate_requested: None,
            errors: ErrorCounts::default(),
            latency_ms: Some(Latency {
                p50: p99 / 4.0,
                p90: p99 / 2.0,
                p99,
                p999: p99,
                max: p99,
                mean: p99 / 4.0,
            }),
            trusted: true,
        }
    }

    fn windows(p99s: &[f64]) -> Vec<WindowRecord> {
        p99s.iter()
            .enumerate()
            .map(|(i, v)| w(i as f64, *v))
            .collect()
    }

    const LT: Comparison = Comparison::Lt;
    const P99: SloMetric = SloMetric::LatencyP99Ms;

    #[test]
    fn recovery_is_zero_when_the_slo_holds_right_after_the_fault() {
        let ws = windows(&[500.0, 500.0, 10.0, 10.0, 10.0, 10.0]);
        assert_eq!(recovery_time(&ws, 2.0, P99, LT, 250.0, 3), Some(0.0));
    }

    #[test]
    fn recovery_counts_to_the_start_of_the_good_run() {
        // Fault ends at 2.0; seconds 2, 3 still bad; 4, 5, 6 good.
        let ws = windows(&[500.0, 500.0, 400.0, 300.0, 10.0, 10.0, 10.0]);
        assert_eq!(recovery_time(&ws, 2.0, P99, LT, 250.0, 3), Some(2.0));
    }

    #[test]
    fn a_relapse_restarts_the_count() {
        let ws = windows(&[10.0, 10.0, 900.0, 10.0, 10.0, 10.0, 10.0]);
        assert_eq!(recovery_time(&ws, 0.0, P99, LT, 250.0, 3), Some(3.0));
    }

    #[test]
    fn a_second_that_still_held_the_fault_does_not_count() {
        // Fault ends at 1.6, inside window [1, 2): the search starts at window 2.
        let ws = windows(&[500.0, 10.0, 10.0, 10.0, 10.0]);
        let r = recovery_time(&ws, 1.6, P99, LT, 250.0, 2).unwrap();
        assert!((r - 0.4).abs() < 1e-9, "{r}");
    }

    #[test]
    fn no_recovery_when_windows_run_out() {
        let ws = windows(&[500.0, 500.0, 10.0, 10.0]);
        assert_eq!(recovery_time(&ws, 0.0, P99, LT, 250.0, 3), None);
    }

    #[test]
    fn empty_and_missing_seconds_prove_nothing_untrusted_ones_are_judged() {
        let mut ws = windows(&[10.0, 10.0, 10.0, 10.0, 10.0, 10.0]);
        ws[1].trusted = false;
        assert_eq!(
            recovery_time(&ws, 0.0, P99, LT, 250.0, 3),
            Some(0.0),
            "judged on its numbers, as the engine's verdict is"
        );
        let mut ws = windows(&[10.0, 10.0, 10.0, 10.0, 10.0]);
        ws[1].latency_ms = None;
        ws[1].ok = 0;
        assert_eq!(recovery_time(&ws, 0.0, P99, LT, 250.0, 3), Some(2.0));
        // Second 2 is missing altogether: 0, 1 | 3, 4, 5.
        let ws: Vec<_> = [0.0, 1.0, 3.0, 4.0, 5.0]
            .iter()
            .map(|t| w(*t, 10.0))
            .collect();
        assert_eq!(recovery_time(&ws, 0.0, P99, LT, 250.0, 3), Some(3.0));
    }

    #[test]
    fn short_windows_count_by_their_length_not_their_number() {
        // Windows cut at a phase start at 2.5: [2, 2.5) and [2.5, 3) are half a second each.
        let mut ws: Vec<_> = [0.0, 1.0, 2.0, 2.5, 3.0, 4.0]
            .iter()
            .map(|t| w(*t, 10.0))
            .collect();
        ws[2].duration_s = 0.5;
        ws[3].duration_s = 0.5;
        ws[0].latency_ms.as_mut().unwrap().p99 = 900.0;
        // Three good seconds from t=1: [1, 2), [2, 2.5), [2.5, 3), [3, 4) - four windows.
        let after_four = ws.iter().take(5).cloned().collect::<Vec<_>>();
        assert_eq!(
            recovery_time(&after_four, 0.0, P99, LT, 250.0, 3),
            Some(1.0),
            "1 + 0.5 + 0.5 + 1 s is three seconds"
        );
        let after_three = ws.iter().take(4).cloned().collect::<Vec<_>>();
        assert_eq!(
            recovery_time(&after_three, 0.0, P99, LT, 250.0, 3),
            None,
            "three windows are only two seconds here"
        );
        // A half-second window with 50 requests is 100 requests a second.
        assert_eq!(
            SloMetric::ThroughputRps.observe_window(&WindowRecord {
                requests: 50,
                ..ws[2].clone()
            }),
            Some(100.0)
        );
    }

    #[test]
    fn availability_recovers_upwards() {
        let mut ws = windows(&[10.0; 5]);
        ws[0].ok = 50;
        ws[0].errors.http_5xx = 50;
        let ge = Comparison::Ge;
        assert_eq!(
            recovery_time(&ws, 0.0, SloMetric::AvailabilityPct, ge, 99.0, 2),
            Some(1.0)
        );
        assert_eq!(
            recovery_time(&ws, 0.0, SloMetric::ErrorRatePct, LT, 1.0, 2),
            Some(1.0)
        );
    }

    fn journal(ws: Vec<WindowRecord>) -> Journal {
        let t0 = time::macros::datetime!(2026-11-01 10:00 UTC);
        let phase = |name: &str, role: &str, a: f64, b: f64| PhaseRecord {
            name: name.into(),
            role: role.into(),
            start_s: a,
            end_s: b,
            stats: PhaseStats::default(),
        };
        Journal {
            journal_version: JOURNAL_VERSION,
            run: RunInfo {
                id: "r1".into(),
                scenario_name: "s".into(),
                scenario_file: None,
                owner: None,
                description: None,
                hypothesis: None,
                tags: vec![],
                participants: vec![],
                started_at: t0,
                ended_at: t0 + time::Duration::seconds(10),
                gameday_version: "0".into(),
                exit_code: 1,
                outcome: Outcome::Violated,
                abort_reason: None,
            },
            scenario: serde_json::Value::Null,
            targets: vec![],
            events: vec![],
            phases: vec![
                phase("base", ROLE_BASELINE, 0.0, 2.0),
                phase("boom", ROLE_CHAOS, 2.0, 6.0),
                phase("after", ROLE_RECOVERY, 6.0, 10.0),
            ],
            windows: ws,
            slos: vec![SloRecord {
                name: "p99".into(),
                metric: P99,
                objective: "< 250 ms".into(),
                comparison: LT,
                threshold: 250.0,
                per_phase: vec![
                    SloPhaseResult {
                        phase: "base".into(),
                        observed: Some(10.0),
                        passed: true,
                    },
                    SloPhaseResult {
                        phase: "boom".into(),
                        observed: Some(800.0),
                        passed: false,
                    },
                    SloPhaseResult {
                        phase: "after".into(),
                        observed: Some(12.0),
                        passed: true,
                    },
                ],
                passed: false,
            }],
            faults: vec![FaultRecord {
                name: "kill-web".into(),
                kind: "process_kill".into(),
                target: "local".into(),
                phase: Some("boom".into()),
                start_s: 3.0,
                end_s: Some(5.0),
                targets: vec!["pid 42".into()],
                irreversible: false,
                reverted: true,
                detail: None,
                service: Some("web".into()),
            }],
            recovery: vec![],
            action_items: vec![],
            playbook: None,
            impact_tolerance: ImpactTolerance::default(),
            owners: Default::default(),
            impacts: vec![],
        }
    }

    #[test]
    fn derived_items_say_which_slo_by_how_much_during_which_fault() {
        let j = journal(windows(&[
            10.0, 10.0, 10.0, 900.0, 700.0, 10.0, 10.0, 10.0, 10.0, 10.0,
        ]));
        let items = derive_action_items(&j);
        assert_eq!(items.len(), 1, "{items:#?}");
        let a = &items[0];
        assert_eq!(a.source, ActionSource::Derived);
        assert_eq!(
            a.priority.as_deref(),
            Some("P1"),
            "800 ms is over 2x 250 ms"
        );
        assert!(a.title.contains("`p99`"), "{}", a.title);
        assert!(a.title.contains("`kill-web` (process_kill)"), "{}", a.title);
        let d = a.detail.as_deref().unwrap();
        assert!(d.contains("800 ms"), "{d}");
        assert!(d.contains("3.2x the threshold, 550 ms over"), "{d}");
        assert!(d.contains("Worst second: 900 ms at t=3s"), "{d}");
        assert!(a.owner.is_none() && a.due.is_none(), "left for the review");
    }

    #[test]
    fn a_broken_baseline_a_failed_revert_and_no_recovery_each_get_an_item() {
        let mut j = journal(windows(&[900.0; 10]));
        j.slos[0].per_phase[0] = SloPhaseResult {
            phase: "base".into(),
            observed: Some(300.0),
            passed: false,
        };
        j.slos[0].per_phase[1].observed = Some(260.0);
        j.faults[0].reverted = false;
        j.recovery = compute_recovery(&j, 3);
        assert_eq!(j.recovery[0].recovered_after_s, None);
        let items = derive_action_items(&j);
        let titles: Vec<&str> = items.iter().map(|a| a.title.as_str()).collect();
        assert!(titles[0].contains("before any fault"), "{titles:#?}");
        assert!(
            items[1].priority.as_deref() == Some("P2"),
            "260 ms against 250 is a small miss"
        );
        assert!(titles.iter().any(|t| t.starts_with("Revert of `kill-web`")));
        assert!(titles.iter().any(|t| t.contains("did not recover")));
    }

    #[test]
    fn time_to_recover_runs_from_the_disaster_to_the_first_good_streak() {
        let j = journal(windows(&[
            10.0, 10.0, 10.0, 900.0, 900.0, 900.0, 10.0, 10.0, 10.0, 10.0,
        ]));
        // Fault starts at 3; seconds 6, 7, 8 are the first good run.
        assert_eq!(time_to_recover(&j, 3), Some(3.0));
        let calm = journal(windows(&[10.0; 10]));
        assert_eq!(time_to_recover(&calm, 3), Some(0.0));
    }

    #[test]
    fn analyse_is_idempotent_and_fills_recovery() {
        let mut j = journal(windows(&[
            10.0, 10.0, 10.0, 900.0, 700.0, 10.0, 10.0, 10.0, 10.0, 10.0,
        ]));
        analyse(&mut j, 3);
        let once = j.clone();
        analyse(&mut j, 3);
        assert_eq!(j, once);
        assert_eq!(j.recovery.len(), 1);
        assert_eq!(j.recovery[0].recovered_after_s, Some(0.0));
    }

    #[test]
    fn the_next_fault_interrupts_a_recovery_instead_of_being_charged_to_it() {
        // kill-web ends at 5; seconds 5..9 bad; a second fault starts at 7.
        let mut j = journal(windows(&[
            10.0, 10.0, 10.0, 900.0, 900.0, 900.0, 900.0, 900.0, 900.0, 10.0, 10.0, 10.0,
        ]));
        let mut second = j.faults[0].clone();
        second.name = "slow-db".into();
        second.start_s = 7.0;
        second.end_s = Some(9.0);
        j.faults.push(second);
        let r = compute_recovery(&j, 3);
        assert_eq!(r[0].fault, "kill-web");
        assert_eq!(r[0].recovered_after_s, None);
        assert_eq!(r[0].interrupted_by.as_deref(), Some("slow-db"));
        assert_eq!(r[1].fault, "slow-db");
        assert_eq!(r[1].recovered_after_s, Some(0.0));
        assert_eq!(r[1].interrupted_by, None);
        // An interrupted recovery is no "did not recover" action item.
        j.recovery = r;
        assert!(!derive_action_items(&j)
            .iter()
            .any(|a| a.title.contains("did not recover")));
    }

    #[test]
    fn compare_classifies_changes() {
        let c = |o, n, op, np| classify(Some(o), Some(n), Some(op), Some(np), true, 250.0, 10.0);
        assert_eq!(c(100.0, 300.0, true, false), Change::Regression);
        assert_eq!(c(300.0, 100.0, false, true), Change::Improvement);
        assert_eq!(c(100.0, 105.0, true, true), Change::Unchanged, "within 10%");
        assert_eq!(
            c(100.0, 150.0, true, true),
            Change::Regression,
            "worse, still passing"
        );
        assert_eq!(
            c(1.0, 2.0, true, true),
            Change::Unchanged,
            "under 5% of threshold"
        );
        assert_eq!(
            c(14.0, 19.0, true, true),
            Change::Unchanged,
            "noise far inside the objective"
        );
        assert_eq!(c(150.0, 100.0, true, true), Change::Improvement);
        // Higher is better for availability.
        assert_eq!(
            classify(
                Some(99.9),
                Some(97.0),
                Some(true),
                Some(true),
                false,
                10.0,
                1.0
            ),
            Change::Regression
        );
        assert_eq!(
            classify(None, Some(1.0), None, Some(true), true, 1.0, 10.0),
            Change::Added
        );
    }

    #[test]
    fn shortfall_reads_well_both_ways() {
        let j = journal(vec![]);
        assert_eq!(shortfall(&j.slos[0], 300.0), "50.0 ms over");
        let mut avail = j.slos[0].clone();
        avail.metric = SloMetric::AvailabilityPct;
        avail.comparison = Comparison::Ge;
        avail.threshold = 99.9;
        assert_eq!(shortfall(&avail, 98.4), "1.50 points short");
    }
}
