//! What users felt, per fault: the load measured while and after each fault, against the
//! baseline phase and its own second-to-second spread.
//!
//! The SLOs answer "did the objectives hold"; this answers "what did this fault do to
//! users", which a run can need even when every SLO held (a chaos phase judged by no SLO, a
//! loose objective). [`compute_impacts`] is pure, like the rest of `analysis`: it reads the
//! journal's windows, phases and faults and nothing else, so `gameday report` can work it
//! out again for an old journal and get the same numbers. Recovery uses the engine's one rule
//! ([`crate::engine::hypothesis::first_good_stretch`], through `analysis`), with "good"
//! meaning "back within the baseline's spread". [`impact_action_item`] turns a fault beyond
//! the scenario's `impact_tolerance` into a drafted action item with its evidence and a
//! suggested owner from `owners`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::fmt::fmt_num;
use super::journal::first_good_stretch;
use super::journal::{
    ActionItem, ActionSource, ErrorCounts, FaultImpact, FaultRecord, ImpactBaseline,
    ImpactTolerance, Journal, Latency, PhaseRecord, WindowRecord, UNASSIGNED,
};

/// A second's error rate is beyond the baseline's spread when it is over the baseline by
/// three standard deviations, and never by less than this many points: a baseline without
/// a single error has no spread, and a thousandth of a point is no impact.
const ERROR_BAND_FLOOR_POINTS: f64 = 0.5;
/// A second's p99 is beyond the baseline's spread when it is over the baseline's by three
/// standard deviations, and never by less than this share of the baseline's p99 (nor 1 ms):
/// per-second p99s of a few dozen requests are noisy.
const P99_BAND_FLOOR_SHARE: f64 = 0.2;

/// The baseline the impacts compare with: the first `baseline` phase no fault touched, else
/// the first phase no fault touched at all.
pub fn baseline_phase(j: &Journal) -> Option<&PhaseRecord> {
    let untouched = |p: &&PhaseRecord| {
        !j.faults.iter().any(|f| {
            let end = f.end_s.unwrap_or(f64::INFINITY).max(f.start_s);
            f.start_s < p.end_s && end > p.start_s
        })
    };
    j.phases
        .iter()
        .filter(|p| p.role == super::journal::ROLE_BASELINE)
        .find(untouched)
        .or_else(|| j.phases.iter().find(untouched))
}

/// The weighted mean and standard deviation of `(value, weight)` pairs.
fn mean_sd(values: &[(f64, f64)]) -> Option<(f64, f64)> {
    let total: f64 = values.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    let mean = values.iter().map(|(v, w)| v * w).sum::<f64>() / total;
    let var = values
        .iter()
        .map(|(v, w)| w * (v - mean).powi(2))
        .sum::<f64>()
        / total;
    Some((mean, var.sqrt()))
}

/// The baseline's figures, from its trusted seconds with requests in them.
pub fn baseline_stats(j: &Journal, phase: &PhaseRecord) -> Option<ImpactBaseline> {
    let ws: Vec<&WindowRecord> = j
        .windows
        .iter()
        .filter(|w| w.t_s + 1e-6 >= phase.start_s && w.t_s < phase.end_s - 1e-6)
        .filter(|w| w.trusted && w.attempted() > 0)
        .collect();
    if ws.is_empty() {
        return None;
    }
    let attempted: u64 = ws.iter().map(|w| w.attempted()).sum();
    let ok: u64 = ws.iter().map(|w| w.ok.min(w.attempted())).sum();
    let errs: Vec<(f64, f64)> = ws
        .iter()
        .filter_map(|w| w.error_pct().map(|e| (e, 1.0)))
        .collect();
    let lat = |get: fn(&Latency) -> f64| -> Vec<(f64, f64)> {
        ws.iter()
            .filter_map(|w| w.latency_ms.map(|l| (get(&l), w.ok as f64)))
            .collect()
    };
    let p99 = mean_sd(&lat(|l| l.p99));
    Some(ImpactBaseline {
        phase: phase.name.clone(),
        seconds: ws.iter().map(|w| w.duration_s).sum(),
        error_pct: (attempted - ok) as f64 * 100.0 / attempted as f64,
        error_pct_sd: mean_sd(&errs).map_or(0.0, |(_, sd)| sd),
        p50_ms: mean_sd(&lat(|l| l.p50)).map(|(m, _)| m),
        p99_ms: p99.map(|(m, _)| m),
        p99_ms_sd: p99.map(|(_, sd)| sd),
    })
}

/// Whether one second is beyond the baseline's spread (more errors, or a slower p99). An
/// empty second is not: it proves nothing either way.
pub fn impacted(w: &WindowRecord, b: &ImpactBaseline) -> bool {
    let Some(err) = w.error_pct() else {
        return false;
    };
    let err_band = (3.0 * b.error_pct_sd).max(ERROR_BAND_FLOOR_POINTS);
    if err > b.error_pct + err_band {
        return true;
    }
    match (w.latency_ms, b.p99_ms) {
        (Some(l), Some(p99)) => {
            let sd = b.p99_ms_sd.unwrap_or(0.0);
            let band = (3.0 * sd).max(P99_BAND_FLOOR_SHARE * p99).max(1.0);
            l.p99 > p99 + band
        }
        _ => false,
    }
}

/// The share of a second's successful requests slower than `x` ms, estimated from its
/// percentiles: the distribution is taken as linear between p50, p90, p99, p99.9 and max
/// (and from 0 to p50). The journal keeps percentiles per second, not histograms, so this is
/// the closest it can tell.
pub fn slower_share(l: &Latency, x: f64) -> f64 {
    if x >= l.max {
        return 0.0;
    }
    let points = [
        (0.0, 0.0),
        (l.p50, 0.5),
        (l.p90, 0.9),
        (l.p99, 0.99),
        (l.p999, 0.999),
        (l.max, 1.0),
    ];
    for pair in points.windows(2) {
        let ((x0, f0), (x1, f1)) = (pair[0], pair[1]);
        if x < x1 {
            let f = if x1 > x0 {
                f0 + (f1 - f0) * (x - x0).max(0.0) / (x1 - x0)
            } else {
                f1
            };
            return (1.0 - f).clamp(0.0, 1.0);
        }
    }
    0.0
}

/// The impact of every fault of the run, in the journal's fault order. `good_seconds` is
/// the recovery rule's stretch (the scenario's `recovery_time.consecutive`, else 3).
pub fn compute_impacts(j: &Journal, good_seconds: u32) -> Vec<FaultImpact> {
    let tol = j.impact_tolerance;
    let baseline = baseline_phase(j).and_then(|p| baseline_stats(j, p));
    j.faults
        .iter()
        .map(|f| fault_impact(j, f, baseline.as_ref(), &tol, good_seconds))
        .collect()
}

/// One fault's impact: see [`FaultImpact`] for what each figure means.
fn fault_impact(
    j: &Journal,
    f: &FaultRecord,
    base: Option<&ImpactBaseline>,
    tol: &ImpactTolerance,
    good_seconds: u32,
) -> FaultImpact {
    let runs_out = j.windows.last().map_or(f.start_s, |w| w.end_s());
    let end = f.end_s.unwrap_or(runs_out).max(f.start_s);
    // Seconds after this fault belong to it only until the next one starts, as in the
    // recovery table.
    let next = j
        .faults
        .iter()
        .filter(|o| o.start_s > end)
        .min_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let limit = next.map_or(runs_out, |n| n.start_s.min(runs_out));
    let candidates: Vec<&WindowRecord> = j
        .windows
        .iter()
        .filter(|w| w.end_s() > f.start_s + 1e-6 && w.t_s < limit - 1e-6)
        .collect();

    let mut first_hit = None;
    let mut recovered_at = None;
    if let Some(b) = base {
        first_hit = candidates
            .iter()
            .find(|w| impacted(w, b))
            .map(|w| w.t_s.max(f.start_s));
        // Recovery counts from the revert, or from the first impacted second when the
        // impact only showed later (a kill noticed by the health check a second after).
        let from = end.max(first_hit.unwrap_or(end));
        recovered_at = first_good_stretch(
            candidates.iter().copied().filter(|w| w.t_s + 1e-6 >= from),
            good_seconds,
            |w| w.attempted() > 0 && !impacted(w, b),
        )
        .map(|s| s.max(from));
    }
    let impact_end = match (first_hit, recovered_at) {
        (Some(_), Some(r)) => r,
        (Some(_), None) => limit,
        (None, _) => end,
    };
    let window_end = end
        .max(impact_end)
        .max(f.start_s + f64::from(good_seconds.max(1)))
        .min(limit)
        .max(f.start_s);
    let in_window: Vec<&WindowRecord> = candidates
        .iter()
        .copied()
        .filter(|w| w.t_s < window_end - 1e-6)
        .collect();

    let mut requests = 0;
    let mut failed = 0;
    let mut errors = ErrorCounts::default();
    let mut slower = 0.0;
    let mut peak_error_pct: f64 = 0.0;
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for w in &in_window {
        let attempted = w.attempted();
        requests += attempted;
        failed += attempted - w.ok.min(attempted);
        add_errors(&mut errors, &w.errors);
        peak_error_pct = peak_error_pct.max(w.error_pct().unwrap_or(0.0));
        if let Some(l) = w.latency_ms {
            p50s.push((l.p50, w.ok as f64));
            p99s.push((l.p99, w.ok as f64));
            if let Some(bp99) = base.and_then(|b| b.p99_ms) {
                slower += w.ok as f64 * slower_share(&l, bp99);
            }
        }
    }
    let peak = |v: &[(f64, f64)]| v.iter().map(|(x, _)| *x).reduce(f64::max);
    let error_pct = if requests > 0 {
        failed as f64 * 100.0 / requests as f64
    } else {
        0.0
    };
    // The worst second: by errors when errors are what moved, else by p99; the first of
    // equals, where the impact began.
    let errors_moved = base.is_some_and(|b| peak_error_pct > b.error_pct + ERROR_BAND_FLOOR_POINTS);
    let score = |w: &WindowRecord| -> Option<f64> {
        if errors_moved {
            w.error_pct()
        } else {
            w.latency_ms.map(|l| l.p99)
        }
    };
    let mut worst: Option<(&WindowRecord, f64)> = None;
    for w in &in_window {
        if let Some(v) = score(w) {
            if worst.is_none_or(|(_, best)| v > best) {
                worst = Some((w, v));
            }
        }
    }
    let worst = worst.map(|(w, _)| w);
    let concurrent_with = j
        .faults
        .iter()
        .filter(|o| o.name != f.name)
        .filter(|o| {
            let o_end = o.end_s.unwrap_or(runs_out).max(o.start_s);
            o.start_s < window_end && o_end > f.start_s
        })
        .map(|o| o.name.clone())
        .collect();

    let mut impact = FaultImpact {
        fault: f.name.clone(),
        kind: f.kind.clone(),
        target: f.target.clone(),
        service: f.service.clone(),
        baseline: base.cloned(),
        window_start_s: f.start_s,
        window_end_s: window_end,
        concurrent_with,
        time_to_impact_s: first_hit.map(|t| (t - f.start_s).max(0.0)),
        impact_duration_s: first_hit.map(|t| (impact_end - t).max(0.0)),
        recovered_after_s: match first_hit {
            None if base.is_some() => Some(0.0),
            None => None,
            Some(_) => recovered_at.map(|r| (r - end).max(0.0)),
        },
        interrupted_by: (first_hit.is_some() && recovered_at.is_none())
            .then(|| next.map(|n| n.name.clone()))
            .flatten(),
        requests,
        failed,
        slower_than_baseline_p99: slower.round() as u64,
        error_pct,
        peak_error_pct,
        p50_ms: mean(&p50s),
        peak_p50_ms: peak(&p50s),
        p99_ms: mean(&p99s),
        peak_p99_ms: peak(&p99s),
        worst_second_s: worst.map(|w| w.t_s),
        errors,
        exceeds_tolerance: false,
        reasons: Vec::new(),
    };
    impact.reasons = beyond_tolerance(&impact, tol);
    impact.exceeds_tolerance = !impact.reasons.is_empty();
    impact
}

/// The weighted mean of `(value, weight)` pairs.
fn mean(values: &[(f64, f64)]) -> Option<f64> {
    mean_sd(values).map(|(m, _)| m)
}

fn add_errors(into: &mut ErrorCounts, e: &ErrorCounts) {
    into.dns += e.dns;
    into.connect_refused += e.connect_refused;
    into.connect_timeout += e.connect_timeout;
    into.reset += e.reset;
    into.request_timeout += e.request_timeout;
    into.tls += e.tls;
    into.http_4xx += e.http_4xx;
    into.http_5xx += e.http_5xx;
    into.other += e.other;
}

/// Why an impact is beyond the tolerance, one sentence per measure; empty when it is not
/// (or when there is no baseline or no request to judge it by).
pub fn beyond_tolerance(i: &FaultImpact, tol: &ImpactTolerance) -> Vec<String> {
    let mut out = Vec::new();
    let Some(b) = &i.baseline else {
        return out;
    };
    if i.requests == 0 {
        return out;
    }
    let over = i.error_pct - b.error_pct;
    if over > tol.error_rate_points + 1e-9 {
        out.push(format!(
            "error rate {}% over the fault's window, +{} pts over the baseline's {}% \
             (tolerance +{} pts)",
            fmt_num(i.error_pct),
            fmt_num(over),
            fmt_num(b.error_pct),
            fmt_num(tol.error_rate_points)
        ));
    }
    if let (Some(ratio), Some(p99), Some(bp99)) = (i.p99_ratio(), i.p99_ms, b.p99_ms) {
        if ratio > tol.p99_ratio + 1e-9 {
            out.push(format!(
                "p99 {} ms (mean per second), {}x the baseline's {} ms (tolerance {}x)",
                fmt_num(p99),
                fmt_num(ratio),
                fmt_num(bp99),
                fmt_num(tol.p99_ratio)
            ));
        }
    }
    out
}

/// The owner to suggest for a fault's item, and the `owners` key that named it: the fault's
/// own name first, then its service, then its target.
pub fn owner_for<'a>(
    owners: &'a BTreeMap<String, String>,
    i: &FaultImpact,
) -> Option<(&'a str, String)> {
    [Some(&i.fault), i.service.as_ref(), Some(&i.target)]
        .into_iter()
        .flatten()
        .find_map(|k| owners.get(k).map(|o| (o.as_str(), k.clone())))
}

/// What users felt beyond the tolerance, in a few words per measure (`35.0% of requests
/// failed (+35.0 pts)`, `p99 12.1x the baseline`): for titles and the verdict's sentence.
pub fn felt(i: &FaultImpact, tol: &ImpactTolerance) -> Vec<String> {
    let mut out = Vec::new();
    let over = i.error_points_over_baseline().unwrap_or(0.0);
    if over > tol.error_rate_points + 1e-9 {
        out.push(format!(
            "{}% of requests failed (+{} pts)",
            fmt_num(i.error_pct),
            fmt_num(over)
        ));
    }
    let ratio = i.p99_ratio().unwrap_or(0.0);
    if ratio > tol.p99_ratio + 1e-9 {
        out.push(format!("p99 {}x the baseline", fmt_num(ratio)));
    }
    out
}

/// Offsets in reports: tenths of a second.
fn tenths(t: f64) -> String {
    format!("{}", (t * 10.0).round() / 10.0)
}

/// The action item drafted for a fault beyond tolerance: what users felt, in the title; the
/// evidence (window, requests affected, error classes, worst second, timing, tolerance) in
/// the detail; the owner from `owners`, else [`UNASSIGNED`]. P1 when errors rose by 5
/// points or more, p99 by twice the tolerated ratio or more, or the service did not come
/// back within the run; P2 otherwise.
pub fn impact_action_item(
    i: &FaultImpact,
    tol: &ImpactTolerance,
    owners: &BTreeMap<String, String>,
    windows: &[WindowRecord],
) -> ActionItem {
    let felt = felt(i, tol);
    let over = i.error_points_over_baseline().unwrap_or(0.0);
    let ratio = i.p99_ratio().unwrap_or(0.0);
    let title = format!(
        "`{}` ({}) hurt users beyond tolerance: {}: make the service tolerate it",
        i.fault,
        i.kind,
        felt.join(", ")
    );
    let mut d = String::new();
    let aimed = match &i.service {
        Some(s) => format!("service `{s}` on target `{}`", i.target),
        None => format!("target `{}`", i.target),
    };
    let _ = write!(
        d,
        "While `{}` hit {aimed} (t={}s to t={}s), {} of {} requests failed",
        i.fault,
        tenths(i.window_start_s),
        tenths(i.window_end_s),
        i.failed,
        i.requests
    );
    if let Some(bp99) = i.baseline.as_ref().and_then(|b| b.p99_ms) {
        let _ = write!(
            d,
            " and about {} succeeded slower than the baseline's p99 of {} ms",
            i.slower_than_baseline_p99,
            fmt_num(bp99)
        );
    }
    d.push('.');
    let classes: Vec<String> = i
        .errors
        .classes()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    if !classes.is_empty() {
        let _ = write!(d, " Errors by class: {}.", classes.join(", "));
    }
    if let Some(w) = i
        .worst_second_s
        .and_then(|t| windows.iter().find(|w| (w.t_s - t).abs() < 1e-9))
    {
        let _ = write!(
            d,
            " Worst second: t={}s, {}% errors",
            tenths(w.t_s),
            fmt_num(w.error_pct().unwrap_or(0.0))
        );
        if let Some(l) = w.latency_ms {
            let _ = write!(d, ", p99 {} ms", fmt_num(l.p99));
        }
        d.push('.');
    }
    if let Some(t) = i.time_to_impact_s {
        let _ = write!(d, " Impact began {}s after injection", tenths(t));
        if let Some(len) = i.impact_duration_s {
            let _ = write!(d, " and lasted {}s", tenths(len));
        }
        match (i.recovered_after_s, &i.interrupted_by) {
            (Some(r), _) => {
                let _ = write!(
                    d,
                    "; back within the baseline's spread {}s after the revert",
                    tenths(r)
                );
            }
            (None, Some(n)) => {
                let _ = write!(d, "; not back to baseline before `{n}` started");
            }
            (None, None) => d.push_str("; not back to baseline before the run ended"),
        }
        d.push('.');
    }
    if !i.concurrent_with.is_empty() {
        let _ = write!(
            d,
            " Also active in this window: {} (their effects are mixed in).",
            i.concurrent_with
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = write!(
        d,
        " Tolerance: +{} pts of errors, {}x the baseline p99 (`impact_tolerance`).",
        fmt_num(tol.error_rate_points),
        fmt_num(tol.p99_ratio)
    );
    let owner = match owner_for(owners, i) {
        Some((o, key)) => {
            let _ = write!(d, " Owner suggested by `owners.{key}`.");
            o.to_owned()
        }
        None => {
            d.push_str(
                " No entry in the scenario's `owners` names this fault, its service or its \
                 target: assign an owner in the review.",
            );
            UNASSIGNED.to_owned()
        }
    };
    let severe = over >= 5.0
        || ratio >= 2.0 * tol.p99_ratio
        || (i.recovered_after_s.is_none() && i.interrupted_by.is_none());
    ActionItem {
        title,
        owner: Some(owner),
        priority: Some(if severe { "P1" } else { "P2" }.to_owned()),
        due: None,
        source: ActionSource::Derived,
        detail: Some(d),
    }
}

/// For a journal written before impacts existed (its `impacts` empty while it has faults):
/// works them out from its windows, with the default tolerance and its recovery stretch,
/// and adds the action items they draft, so `gameday report` shows what users felt for old
/// runs too. A journal that already has them is left as it is.
pub fn fill_missing(j: &mut Journal) {
    if !j.impacts.is_empty() || j.faults.is_empty() {
        return;
    }
    let good_seconds = j
        .recovery
        .first()
        .map_or(crate::scenario::model::DEFAULT_GOOD_SECONDS, |r| {
            r.good_seconds
        });
    j.impacts = compute_impacts(j, good_seconds);
    let drafted: Vec<ActionItem> = j
        .impacts
        .iter()
        .filter(|i| i.exceeds_tolerance)
        .map(|i| impact_action_item(i, &j.impact_tolerance, &j.owners, &j.windows))
        .collect();
    j.action_items.extend(drafted);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::journal::*;

    /// One second: `ok` of 100 requests answered, the rest failed by DNS, with a p99.
    fn w(t: f64, ok: u64, p99: f64) -> WindowRecord {
        WindowRecord {
            t_s: t,
            duration_s: 1.0,
            requests: 100,
            ok,
            dropped: 0,
            late: 0,
            retries: 0,
            stalled: false,
            rate_requested: Some(100.0),
            errors: ErrorCounts {
                dns: 100 - ok,
                ..ErrorCounts::default()
            },
            latency_ms: (ok > 0).then_some(Latency {
                p50: p99 / 3.0,
                p90: p99 / 1.5,
                p99,
                p999: p99 * 1.1,
                max: p99 * 1.2,
                mean: p99 / 3.0,
            }),
            trusted: true,
        }
    }

    fn fault(name: &str, start: f64, end: f64) -> FaultRecord {
        FaultRecord {
            name: name.into(),
            kind: "dns".into(),
            target: "local".into(),
            phase: Some("chaos".into()),
            start_s: start,
            end_s: Some(end),
            targets: vec![],
            irreversible: false,
            reverted: true,
            detail: None,
            service: Some("backend".into()),
        }
    }

    /// A run of `secs.len()` seconds: baseline [0, 10), chaos [10, 20), recovery after;
    /// every SLO held (the SLOs are not looked at by the impact at all).
    fn journal(secs: &[(u64, f64)], faults: Vec<FaultRecord>) -> Journal {
        let t0 = time::macros::datetime!(2026-11-01 10:00 UTC);
        let n = secs.len() as f64;
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
                ended_at: t0 + time::Duration::seconds(n as i64),
                gameday_version: "0".into(),
                exit_code: 0,
                outcome: Outcome::Held,
                abort_reason: None,
            },
            scenario: serde_json::Value::Null,
            targets: vec![],
            events: vec![],
            phases: vec![
                phase("baseline", ROLE_BASELINE, 0.0, 10.0),
                phase("chaos", ROLE_CHAOS, 10.0, 20.0),
                phase("recovery", ROLE_RECOVERY, 20.0, n),
            ],
            windows: secs
                .iter()
                .enumerate()
                .map(|(i, (ok, p99))| w(i as f64, *ok, *p99))
                .collect(),
            slos: vec![],
            faults,
            recovery: vec![],
            action_items: vec![],
            playbook: None,
            impact_tolerance: ImpactTolerance::default(),
            owners: Default::default(),
            impacts: vec![],
        }
    }

    /// Ten calm seconds (p99 10 ms, no error), then `chaos`, then calm again to 30 s.
    fn run(chaos: &[(u64, f64)]) -> Vec<(u64, f64)> {
        let mut v = vec![(100, 10.0); 10];
        v.extend_from_slice(chaos);
        v.resize(30, (100, 10.0));
        v
    }

    #[test]
    fn a_dns_fault_that_fails_a_third_of_requests_is_measured_and_is_a_finding() {
        // Injected at 11, reverted at 16; seconds 12..17 fail 35%; back at 17.
        let secs = run(&[
            (100, 10.0),
            (100, 10.0),
            (65, 12.0),
            (65, 12.0),
            (65, 12.0),
            (65, 12.0),
            (65, 12.0),
        ]);
        let j = journal(&secs, vec![fault("servfail", 11.0, 16.0)]);
        let i = &compute_impacts(&j, 3)[0];
        let b = i.baseline.as_ref().unwrap();
        assert_eq!(b.phase, "baseline");
        assert_eq!(b.error_pct, 0.0);
        assert_eq!(b.p99_ms, Some(10.0));
        assert_eq!(i.time_to_impact_s, Some(1.0), "{i:#?}");
        assert_eq!(i.impact_duration_s, Some(5.0));
        assert_eq!(
            i.recovered_after_s,
            Some(1.0),
            "17 is one second after the revert"
        );
        // The window: injection (11) to the end of the impact (17).
        assert_eq!((i.window_start_s, i.window_end_s), (11.0, 17.0));
        assert_eq!(i.requests, 600);
        assert_eq!(i.failed, 175);
        assert_eq!(i.errors.dns, 175);
        assert_eq!(i.peak_error_pct, 35.0);
        assert!((i.error_pct - 175.0 / 6.0).abs() < 1e-9, "{}", i.error_pct);
        assert_eq!(i.worst_second_s, Some(12.0));
        assert!(i.exceeds_tolerance);
        assert_eq!(i.reasons.len(), 1, "p99 1.2x is within 2x: {:?}", i.reasons);
        assert!(i.reasons[0].contains("+29.2 pts"), "{:?}", i.reasons);
    }

    #[test]
    fn slower_requests_are_a_finding_by_p99_and_are_counted() {
        // A 200 ms link: p99 230 ms for the 10 s of the fault.
        let secs = run(&[(100, 230.0); 10]);
        let j = journal(&secs, vec![fault("slow-link", 10.0, 20.0)]);
        let i = &compute_impacts(&j, 3)[0];
        assert_eq!(i.time_to_impact_s, Some(0.0));
        assert_eq!(i.recovered_after_s, Some(0.0));
        assert_eq!(i.p99_ratio(), Some(23.0));
        assert!(
            i.exceeds_tolerance && i.reasons[0].contains("23.0x"),
            "{:?}",
            i.reasons
        );
        // p50 is 76.7 ms, far over the baseline's p99 of 10 ms: nearly every request is
        // slower (the estimate takes the seconds' distributions as linear from 0 to p50).
        assert!((900..=1000).contains(&i.slower_than_baseline_p99), "{i:#?}");
        assert_eq!(i.failed, 0);
    }

    #[test]
    fn within_tolerance_is_measured_but_no_finding() {
        // p99 1.5x for the fault's 10 s, one failure in 1000: felt, but tolerated.
        let mut chaos = vec![(100, 15.0); 10];
        chaos[3] = (99, 15.0);
        let secs = run(&chaos);
        let mut j = journal(&secs, vec![fault("mild", 10.0, 20.0)]);
        let i = &compute_impacts(&j, 3)[0];
        assert_eq!(
            i.time_to_impact_s,
            Some(0.0),
            "1.5x is beyond the baseline's spread"
        );
        assert!(!i.exceeds_tolerance, "{:?}", i.reasons);
        assert!(i.reasons.is_empty());
        crate::report::analysis::analyse(&mut j, 3);
        assert!(j.action_items.is_empty(), "{:#?}", j.action_items);
        // A tighter tolerance makes the same run a finding.
        j.impact_tolerance.p99_ratio = 1.2;
        crate::report::analysis::analyse(&mut j, 3);
        assert_eq!(j.findings().count(), 1);
        assert_eq!(j.action_items.len(), 1);
    }

    #[test]
    fn a_kill_felt_a_second_later_recovers_from_its_impact_not_its_instant() {
        // An instant fault at 12 (start == end); errors only from 13 to 15.
        let secs = run(&[(100, 10.0), (100, 10.0), (100, 10.0), (0, 0.0), (50, 20.0)]);
        let j = journal(&secs, vec![fault("kill", 12.0, 12.0)]);
        let i = &compute_impacts(&j, 3)[0];
        assert_eq!(i.time_to_impact_s, Some(1.0));
        assert_eq!(i.impact_duration_s, Some(2.0));
        assert_eq!(
            i.recovered_after_s,
            Some(3.0),
            "back at 15, the kill was at 12"
        );
        assert_eq!(i.peak_error_pct, 100.0);
        assert!(i.exceeds_tolerance);
    }

    #[test]
    fn the_next_fault_interrupts_the_impact_instead_of_adding_to_it() {
        // `first` (10..12) hurts until 16; `second` starts at 14.
        let secs = run(&[(50, 10.0); 8]);
        let j = journal(
            &secs,
            vec![fault("first", 10.0, 12.0), fault("second", 14.0, 16.0)],
        );
        let is = compute_impacts(&j, 3);
        assert_eq!(is[0].window_end_s, 14.0);
        assert_eq!(is[0].recovered_after_s, None);
        assert_eq!(is[0].interrupted_by.as_deref(), Some("second"));
        assert_eq!(is[0].requests, 400, "seconds 10..14 only");
        assert_eq!(is[1].recovered_after_s, Some(2.0));
    }

    #[test]
    fn no_fault_free_phase_means_no_baseline_and_no_finding() {
        let secs = run(&[(50, 10.0); 10]);
        let j = journal(&secs, vec![fault("everywhere", 0.0, 30.0)]);
        let i = &compute_impacts(&j, 3)[0];
        assert!(i.baseline.is_none());
        assert!(!i.exceeds_tolerance);
        assert_eq!(i.recovered_after_s, None);
    }

    #[test]
    fn the_baseline_falls_back_to_the_first_phase_no_fault_touched() {
        let secs = run(&[(50, 10.0); 10]);
        let mut j = journal(
            &secs,
            vec![fault("early", 2.0, 4.0), fault("late", 12.0, 14.0)],
        );
        j.phases[2].role = ROLE_BASELINE.into();
        assert_eq!(
            baseline_phase(&j).map(|p| p.name.as_str()),
            Some("recovery")
        );
        j.phases[2].role = ROLE_RECOVERY.into();
        assert_eq!(
            baseline_phase(&j).map(|p| p.name.as_str()),
            Some("recovery")
        );
    }

    #[test]
    fn owners_are_looked_up_by_fault_then_service_then_target() {
        let secs = run(&[(50, 10.0); 5]);
        let j = journal(&secs, vec![fault("servfail", 10.0, 15.0)]);
        let i = &compute_impacts(&j, 3)[0];
        let tol = ImpactTolerance::default();
        let mut owners = BTreeMap::new();
        let item = impact_action_item(i, &tol, &owners, &j.windows);
        assert_eq!(item.owner.as_deref(), Some(UNASSIGNED));
        assert!(!item.has_owner(), "unassigned is no owner");
        owners.insert("local".to_owned(), "platform".to_owned());
        assert_eq!(
            owner_for(&owners, i),
            Some(("platform", "local".to_owned()))
        );
        owners.insert("backend".to_owned(), "team-backend".to_owned());
        let item = impact_action_item(i, &tol, &owners, &j.windows);
        assert_eq!(item.owner.as_deref(), Some("team-backend"));
        assert!(item.has_owner());
        assert!(
            item.detail.as_deref().unwrap().contains("`owners.backend`"),
            "{item:#?}"
        );
        owners.insert("servfail".to_owned(), "dns-team".to_owned());
        assert_eq!(owner_for(&owners, i).map(|o| o.0), Some("dns-team"));
    }

    #[test]
    fn the_drafted_item_carries_its_evidence() {
        let secs = run(&[(65, 12.0); 6]);
        let j = journal(&secs, vec![fault("servfail", 10.0, 16.0)]);
        let i = &compute_impacts(&j, 3)[0];
        let a = impact_action_item(i, &ImpactTolerance::default(), &BTreeMap::new(), &j.windows);
        assert_eq!(a.source, ActionSource::Derived);
        assert_eq!(a.priority.as_deref(), Some("P1"), "35 points is severe");
        assert!(a.title.contains("`servfail` (dns)"), "{}", a.title);
        assert!(a.title.contains("35.0% of requests failed"), "{}", a.title);
        let d = a.detail.unwrap();
        for want in [
            "210 of 600 requests failed",
            "Errors by class: dns: 210",
            "Worst second: t=10s, 35.0% errors",
            "service `backend`",
            "Impact began 0s after injection and lasted 6s",
        ] {
            assert!(d.contains(want), "`{want}` missing in: {d}");
        }
    }

    #[test]
    fn slower_share_reads_the_percentiles() {
        let l = Latency {
            p50: 10.0,
            p90: 20.0,
            p99: 40.0,
            p999: 80.0,
            max: 100.0,
            mean: 12.0,
        };
        assert_eq!(slower_share(&l, 100.0), 0.0);
        assert!((slower_share(&l, 10.0) - 0.5).abs() < 1e-9);
        assert!((slower_share(&l, 15.0) - 0.3).abs() < 1e-9);
        assert!((slower_share(&l, 40.0) - 0.01).abs() < 1e-9);
        assert!((slower_share(&l, 0.0) - 1.0).abs() < 1e-9);
    }
}
