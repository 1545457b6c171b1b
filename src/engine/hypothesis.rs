//! The steady-state hypothesis, judged: per phase for the verdict, per second for stop
//! conditions and recovery times. Pure functions over load windows, so they test without IO.

use serde::{Deserialize, Serialize};

use crate::load::{merge, LiveView, LiveWindow, Percentiles, Window};
use crate::scenario::model::{LatencyObjective, PercentMax, PercentMin, Slo, StopCondition};

/// What one phase measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseMeasure {
    /// Requests completed.
    pub requests: u64,
    /// Successful requests.
    pub ok: u64,
    /// Requests the generator could not send in time (they count as failed for users).
    pub dropped: u64,
    /// Latency percentiles over the phase (merged histograms, not averaged percentiles).
    pub latency: Percentiles,
    /// Completed requests per second.
    pub rate: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// Windows the generator could not be trusted for.
    pub untrusted_windows: u64,
    /// Closed model: seconds in which requests were outstanding and none completed.
    #[serde(default)]
    pub stalled_seconds: f64,
}

impl PhaseMeasure {
    /// Failed share of attempted requests, percent (100 - availability).
    pub fn error_pct(&self) -> f64 {
        if self.requests + self.dropped == 0 && self.stalled_seconds == 0.0 {
            return 0.0;
        }
        100.0 - self.availability_pct()
    }

    /// Successful share of attempted requests, percent. In the closed model a hang sends
    /// nothing to count, so the seconds it stalled count as seconds of no availability: the
    /// share of requests that succeeded, over the time that was not stalled.
    pub fn availability_pct(&self) -> f64 {
        let attempted = self.requests + self.dropped;
        let by_requests = if attempted == 0 {
            0.0
        } else {
            100.0 * self.ok as f64 / attempted as f64
        };
        if self.stalled_seconds > 0.0 && self.seconds > 0.0 {
            by_requests * (1.0 - (self.stalled_seconds / self.seconds).min(1.0))
        } else {
            by_requests
        }
    }
}

/// The windows whose start falls in `[start_s, end_s)`.
pub fn windows_in(windows: &[Window], start_s: f64, end_s: f64) -> impl Iterator<Item = &Window> {
    windows
        .iter()
        .filter(move |w| w.start_s + 1e-6 >= start_s && w.start_s < end_s - 1e-6)
}

/// Measures a span of the run from its windows, merging their histograms.
pub fn measure(windows: &[Window], start_s: f64, end_s: f64) -> PhaseMeasure {
    let ws: Vec<&Window> = windows_in(windows, start_s, end_s).collect();
    let mut m = PhaseMeasure::default();
    for w in &ws {
        m.requests += w.requests;
        m.ok += w.ok;
        m.dropped += w.dropped;
        m.seconds += w.duration_s;
        if !w.trusted {
            m.untrusted_windows += 1;
        }
        if w.stalled {
            m.stalled_seconds += w.duration_s;
        }
    }
    if let Ok(h) = merge(ws.iter().map(|w| &w.histograms.latency)) {
        m.latency = Percentiles::of(&h);
    }
    if m.seconds > 0.0 {
        m.rate = m.requests as f64 / m.seconds;
    }
    m
}

/// The latency at `percentile` from a percentile summary, or from the merged histogram for
/// percentiles that the summary does not carry.
pub fn latency_at(p: &Percentiles, percentile: f64, hist: Option<&crate::load::HistBlob>) -> f64 {
    match percentile {
        x if (x - 50.0).abs() < 1e-9 => p.p50,
        x if (x - 90.0).abs() < 1e-9 => p.p90,
        x if (x - 99.0).abs() < 1e-9 => p.p99,
        x if (x - 99.9).abs() < 1e-9 => p.p999,
        x if x >= 100.0 => p.max,
        x => hist
            .and_then(|b| b.decode().ok())
            .map(|h| h.value_at_quantile(x / 100.0) as f64 / 1000.0)
            .unwrap_or(p.p99),
    }
}

/// One objective with a bound, as the report words it.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// Latency percentile at most `max_ms`.
    Latency {
        /// Which percentile.
        percentile: f64,
        /// The bound in ms.
        max_ms: f64,
    },
    /// Error rate at most, percent.
    ErrorRate(f64),
    /// Availability at least, percent.
    Availability(f64),
}

impl Objective {
    /// The objective of an SLO or stop condition, if it has a per-measure one.
    pub fn of(
        latency: &Option<LatencyObjective>,
        err: &Option<PercentMax>,
        avail: &Option<PercentMin>,
    ) -> Option<Objective> {
        if let Some(l) = latency {
            return Some(Objective::Latency {
                percentile: l.percentile,
                max_ms: l.max.secs_f64() * 1000.0,
            });
        }
        if let Some(e) = err {
            return Some(Objective::ErrorRate(e.max_percent));
        }
        avail
            .as_ref()
            .map(|a| Objective::Availability(a.min_percent))
    }

    /// A metric name for the journal (`latency_p99_ms`, `error_rate_pct`, `availability_pct`).
    pub fn metric(&self) -> String {
        match self {
            Objective::Latency { percentile, .. } => {
                format!("latency_p{}_ms", fmt_pct(*percentile))
            }
            Objective::ErrorRate(_) => "error_rate_pct".into(),
            Objective::Availability(_) => "availability_pct".into(),
        }
    }

    /// The bound, in the metric's unit.
    pub fn threshold(&self) -> f64 {
        match self {
            Objective::Latency { max_ms, .. } => *max_ms,
            Objective::ErrorRate(x) | Objective::Availability(x) => *x,
        }
    }

    /// `< 250 ms`, `<= 1 %`, `>= 99.5 %`.
    pub fn describe(&self) -> String {
        match self {
            Objective::Latency { percentile, max_ms } => {
                format!("p{} <= {max_ms} ms", fmt_pct(*percentile))
            }
            Objective::ErrorRate(x) => format!("errors <= {x} %"),
            Objective::Availability(x) => format!("availability >= {x} %"),
        }
    }

    /// The observed value over a phase or window.
    pub fn observe(&self, m: &PhaseMeasure, hist: Option<&crate::load::HistBlob>) -> f64 {
        match self {
            Objective::Latency { percentile, .. } => latency_at(&m.latency, *percentile, hist),
            Objective::ErrorRate(_) => m.error_pct(),
            Objective::Availability(_) => m.availability_pct(),
        }
    }

    /// Whether `observed` meets the objective.
    pub fn met(&self, observed: f64) -> bool {
        match self {
            Objective::Latency { max_ms, .. } => observed <= *max_ms,
            Objective::ErrorRate(x) => observed <= *x,
            Objective::Availability(x) => observed >= *x,
        }
    }

    /// Whether one final window meets the objective (recovery counts these): only a
    /// [`WindowState::Good`] one does. A second with no attempted request does not: silence
    /// is not health.
    pub fn window_met(&self, w: &Window) -> bool {
        self.final_state(w) == WindowState::Good
    }

    /// What a final window says about the objective. A hang in the closed model is bad; a
    /// window no request was meant for (a paused load) says nothing.
    pub fn final_state(&self, w: &Window) -> WindowState {
        if w.stalled {
            return WindowState::Bad;
        }
        if w.attempted() == 0 {
            return WindowState::Unknown;
        }
        let m = window_measure(w);
        if self.met(self.observe(&m, Some(&w.histograms.latency))) {
            WindowState::Good
        } else {
            WindowState::Bad
        }
    }

    /// What a window that is not final yet already says about the objective, with certainty:
    /// `Bad` when it fails even if every pending request ends well, `Good` when it holds even
    /// if every pending request fails (or waits to its timeout), `Unknown` in between. So a
    /// second with requested load and no outcome yet is never good, and a request in flight
    /// past the latency bound already counts as slow.
    pub fn live_state(&self, w: &LiveWindow) -> WindowState {
        if w.stalled {
            return WindowState::Bad;
        }
        let total = w.attempted();
        if total == 0 {
            return WindowState::Unknown;
        }
        let known = total - w.pending;
        let pct = |n: u64| 100.0 * n as f64 / total as f64;
        let (bad, good) = match self {
            Objective::Availability(min) => (pct(w.ok + w.pending) < *min, pct(w.ok) >= *min),
            Objective::ErrorRate(max) => {
                (pct(w.failed()) > *max, pct(w.failed() + w.pending) <= *max)
            }
            Objective::Latency { percentile, max_ms } => {
                let (low, high) = w.latency_bounds(*percentile);
                (low > *max_ms, high <= *max_ms)
            }
        };
        if bad {
            WindowState::Bad
        } else if good && known > 0 {
            WindowState::Good
        } else {
            WindowState::Unknown
        }
    }

    /// The value a live window shows for the objective (for messages): over the outcomes
    /// known so far, the latency counting pending requests at their age.
    pub fn live_observed(&self, w: &LiveWindow) -> f64 {
        let known = w.ok + w.failed();
        match self {
            Objective::Latency { percentile, .. } => w.latency_bounds(*percentile).0,
            Objective::ErrorRate(_) if known > 0 => 100.0 * w.failed() as f64 / known as f64,
            Objective::Availability(_) if known > 0 => 100.0 * w.ok as f64 / known as f64,
            Objective::ErrorRate(_) | Objective::Availability(_) => 0.0,
        }
    }

    fn unit(&self) -> &'static str {
        if matches!(self, Objective::Latency { .. }) {
            "ms"
        } else {
            "%"
        }
    }
}

/// What one window says about one objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// It met the objective.
    Good,
    /// It broke the objective.
    Bad,
    /// Not known (yet): no outcome, or pending requests could still tip it, or no load was
    /// asked for. Never resets a breach streak, never extends it.
    Unknown,
}

fn fmt_pct(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as u64)
    } else {
        format!("{p}").replace('.', "")
    }
}

/// A window as a one-second measure.
pub fn window_measure(w: &Window) -> PhaseMeasure {
    PhaseMeasure {
        requests: w.requests,
        ok: w.ok,
        dropped: w.dropped,
        latency: w.latency,
        rate: w.rate_achieved,
        seconds: w.duration_s,
        untrusted_windows: u64::from(!w.trusted),
        stalled_seconds: if w.stalled { w.duration_s } else { 0.0 },
    }
}

/// Watches stop conditions second by second, on final windows and on the live view of the
/// windows not final yet. A breach streak is the time of bad windows since the last good one;
/// a window whose state is unknown (its requests still pending) neither resets nor extends it,
/// so silence during an outage can never make a condition look held.
#[derive(Debug)]
pub struct StopWatch {
    conditions: Vec<(StopCondition, Objective)>,
    /// Each condition's streak at the end of the final windows, seconds.
    streak: Vec<f64>,
    /// Index of the last final window fed.
    last_final: Option<u64>,
}

impl StopWatch {
    /// For the scenario's stop conditions.
    pub fn new(conditions: &[StopCondition]) -> Self {
        let conditions: Vec<_> = conditions
            .iter()
            .filter_map(|c| {
                Objective::of(&c.latency, &c.error_rate, &c.availability).map(|o| (c.clone(), o))
            })
            .collect();
        let streak = vec![0.0; conditions.len()];
        StopWatch {
            conditions,
            streak,
            last_final: None,
        }
    }

    fn step(streak: f64, state: WindowState, duration_s: f64) -> f64 {
        match state {
            WindowState::Good => 0.0,
            WindowState::Bad => streak + duration_s,
            WindowState::Unknown => streak,
        }
    }

    fn fired(c: &StopCondition, o: &Objective, streak: f64, observed: f64) -> Option<String> {
        (streak + 1e-6 >= c.hold_for.secs_f64()).then(|| {
            format!(
                "stop condition `{}` fired: {} broken for {:.0}s (last second: {:.2} {})",
                c.name,
                o.describe(),
                streak,
                observed,
                o.unit()
            )
        })
    }

    /// Feeds one final window; returns why the run must stop, once a condition has been
    /// broken for its whole `for`.
    pub fn feed(&mut self, w: &Window) -> Option<String> {
        self.last_final = Some(w.index);
        let mut out = None;
        for (i, (c, o)) in self.conditions.iter().enumerate() {
            self.streak[i] = Self::step(self.streak[i], o.final_state(w), w.duration_s);
            let observed = o.observe(&window_measure(w), Some(&w.histograms.latency));
            out = out.or_else(|| Self::fired(c, o, self.streak[i], observed));
        }
        out
    }

    /// Checks the live view: the streaks of the final windows carried through the windows
    /// not final yet, in order. Returns why the run must stop, if a condition is already
    /// certainly broken for its whole `for`.
    pub fn check_live(&self, view: &LiveView) -> Option<String> {
        for (i, (c, o)) in self.conditions.iter().enumerate() {
            let mut streak = self.streak[i];
            for w in &view.windows {
                if self.last_final.is_some_and(|f| w.index <= f) {
                    continue;
                }
                streak = Self::step(streak, o.live_state(w), w.duration_s);
                if let Some(reason) = Self::fired(c, o, streak, o.live_observed(w)) {
                    return Some(reason);
                }
            }
        }
        None
    }
}

/// The start of the first stretch of good windows that lasts `good_seconds` or more: the one
/// rule of "recovered" that the engine's verdict and the report's recovery table both use.
/// Each item is a window's (start s, length s, good). Windows count by their length, not their
/// number (a run's first window and those cut at a phase start are shorter than a second); a
/// bad window breaks a stretch, and so does a gap of more than half a second between two.
pub fn first_good_stretch(
    windows: impl IntoIterator<Item = (f64, f64, bool)>,
    good_seconds: u32,
) -> Option<f64> {
    const GAP_S: f64 = 0.5;
    let need = f64::from(good_seconds.max(1));
    let mut stretch: Option<(f64, f64)> = None; // (start, seconds so far)
    let mut prev_end: Option<f64> = None;
    for (start_s, duration_s, good) in windows {
        if prev_end.is_some_and(|e| start_s - e > GAP_S) {
            stretch = None;
        }
        prev_end = Some(start_s + duration_s);
        if !good {
            stretch = None;
            continue;
        }
        let (first, seconds) = stretch.get_or_insert((start_s, 0.0));
        *seconds += duration_s;
        if *seconds + 1e-6 >= need {
            return Some(*first);
        }
    }
    None
}

/// Seconds from `from_s` until every objective held for `consecutive` seconds in a row,
/// counted to the start of that stretch; `None` if the run ended first. A window with no
/// request meant for it is not good (silence is not health).
pub fn recovery_after(
    windows: &[Window],
    from_s: f64,
    objectives: &[Objective],
    consecutive: u32,
) -> Option<f64> {
    let spans = windows
        .iter()
        .filter(|w| w.start_s + 1e-6 >= from_s)
        .map(|w| {
            let good = objectives.iter().all(|o| o.window_met(w));
            (w.start_s, w.duration_s, good)
        });
    first_good_stretch(spans, consecutive).map(|f| (f - from_s).max(0.0))
}

/// What one fault's recovery says about a `recovery_time` objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecoveryVerdict {
    /// Steady again after this many seconds.
    Within(f64),
    /// No good stretch started within `max` of the fault's end, and the seconds seen show it
    /// (a bad second after `max`): evidence against the objective.
    NotRecovered,
    /// The next fault started, or the run ended, while a recovery within `max` was still
    /// possible (a good stretch had begun in time but was too short to prove it, or `max` had
    /// not passed yet): this fault's recovery could not be measured, no evidence either way.
    Unmeasured,
}

/// Recovery after the fault that ended at `end_s`, judged against `max` seconds. The
/// seconds after a fault belong to it only until the next fault starts (`fault_starts` holds
/// every fault's start), as in the report's recovery table: a later fault's damage is never
/// charged to an earlier one. Returns the seconds to recover (`None`: not seen) and the verdict.
pub fn judge_recovery(
    windows: &[Window],
    end_s: f64,
    fault_starts: &[f64],
    objectives: &[Objective],
    consecutive: u32,
    max: f64,
) -> (Option<f64>, RecoveryVerdict) {
    let next_fault = fault_starts
        .iter()
        .copied()
        .filter(|s| *s > end_s)
        .min_by(f64::total_cmp)
        .unwrap_or(f64::INFINITY);
    // Windows are in time order: the ones that end by the next fault are a prefix.
    let n = windows.partition_point(|w| w.start_s + w.duration_s <= next_fault + 1e-6);
    let after = recovery_after(&windows[..n], end_s, objectives, consecutive);
    // A recovery within `max` is still possible if the good stretch the measurements end with
    // (or, when they end on a bad second, the first second not seen) started within `max`:
    // more seconds might have proven it. Only when it is later than `max` is the objective
    // broken.
    let seen = windows[..n].iter().filter(|w| w.start_s + 1e-6 >= end_s);
    let mut tail_start = None;
    let mut seen_until = end_s;
    for w in seen {
        let good = objectives.iter().all(|o| o.window_met(w));
        tail_start = if good {
            tail_start.or(Some(w.start_s))
        } else {
            None
        };
        seen_until = w.start_s + w.duration_s;
    }
    let open_from = tail_start.unwrap_or(seen_until);
    let verdict = match after {
        Some(a) => RecoveryVerdict::Within(a),
        None if open_from - end_s <= max + 1e-6 => RecoveryVerdict::Unmeasured,
        None => RecoveryVerdict::NotRecovered,
    };
    (after, verdict)
}

/// The objectives of the SLOs other than recovery time, which recovery is judged against.
pub fn steady_objectives(slos: &[Slo]) -> Vec<Objective> {
    slos.iter()
        .filter_map(|s| Objective::of(&s.latency, &s.error_rate, &s.availability))
        .collect()
}

// The judged results: what the runner, the probes and the report share.

/// SLO verdict for one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseVerdict {
    /// The phase.
    pub phase: String,
    /// The observed value (`None`: nothing measured).
    pub observed: Option<f64>,
    /// Whether it held.
    pub passed: bool,
}

/// One SLO, judged.
#[derive(Debug, Clone, Serialize)]
pub struct SloVerdict {
    /// Its name.
    pub name: String,
    /// `latency_p99_ms`, `error_rate_pct`, `availability_pct`, `recovery_time_s`.
    pub metric: String,
    /// In words.
    pub objective: String,
    /// The bound.
    pub threshold: f64,
    /// Per phase.
    pub per_phase: Vec<PhaseVerdict>,
    /// Held everywhere it applies.
    pub passed: bool,
}

/// Recovery after one fault.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// The fault.
    pub fault: String,
    /// When it ended, seconds since start.
    pub fault_end_s: f64,
    /// Seconds until steady state again (`None`: not within the run).
    pub recovered_after_s: Option<f64>,
}

/// A phase, measured.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// The phase's name.
    pub name: String,
    /// Its role.
    pub role: crate::scenario::model::PhaseRole,
    /// Start, seconds since start.
    pub start_s: f64,
    /// End (actual, if cut short).
    pub end_s: f64,
    /// What the load measured.
    pub measure: PhaseMeasure,
    /// Merged histograms of its windows.
    pub histograms: Option<crate::load::HistSet>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::hist::new_histogram;
    use crate::load::{ErrorCounts, HistBlob, HistSet};

    /// One second of load with `ok` good answers out of 10.
    fn win(i: u64, ok: u64) -> Window {
        let empty = HistBlob::encode(&new_histogram());
        Window {
            index: i,
            start_s: i as f64,
            duration_s: 1.0,
            requests: 10,
            ok,
            dropped: 0,
            late: 0,
            errors: ErrorCounts {
                http_5xx: 10 - ok,
                ..Default::default()
            },
            rate_requested: None,
            rate_achieved: 10.0,
            latency: Default::default(),
            service: Default::default(),
            lag: Default::default(),
            heartbeat_p99_ms: 0.0,
            retries: 0,
            stalled: false,
            trusted: true,
            histograms: HistSet {
                latency: empty.clone(),
                service: empty.clone(),
                lag: empty,
            },
        }
    }

    /// Availability by second: 0-4 good, 5-9 bad, 10-19 good.
    fn run() -> Vec<Window> {
        (0..20)
            .map(|i| win(i, if (5..10).contains(&i) { 0 } else { 10 }))
            .collect()
    }

    #[test]
    fn recovery_is_measured_from_the_fault_end_to_the_good_run() {
        let obj = [Objective::Availability(99.0)];
        let (after, v) = judge_recovery(&run(), 5.0, &[4.0], &obj, 3, 10.0);
        assert_eq!(after, Some(5.0));
        assert_eq!(v, RecoveryVerdict::Within(5.0));
    }

    #[test]
    fn a_later_fault_cuts_the_measurement_and_is_not_charged_to_the_earlier_one() {
        let obj = [Objective::Availability(99.0)];
        // The next fault starts at 8 s, 3 s after this one ended, before `max` (10 s).
        let (after, v) = judge_recovery(&run(), 5.0, &[4.0, 8.0], &obj, 3, 10.0);
        assert_eq!(after, None);
        assert_eq!(v, RecoveryVerdict::Unmeasured);
        // With max 2 s, 3 s without recovery already break it.
        let (_, v) = judge_recovery(&run(), 5.0, &[4.0, 8.0], &obj, 3, 2.0);
        assert_eq!(v, RecoveryVerdict::NotRecovered);
    }

    #[test]
    fn never_steady_again_is_not_recovered() {
        let obj = [Objective::Availability(99.0)];
        let bad: Vec<Window> = (0..10).map(|i| win(i, 0)).collect();
        let (after, v) = judge_recovery(&bad, 2.0, &[1.0], &obj, 3, 3.0);
        assert_eq!(after, None);
        assert_eq!(v, RecoveryVerdict::NotRecovered);
    }

    #[test]
    fn a_run_that_ends_before_max_has_passed_does_not_measure_recovery() {
        let obj = [Objective::Availability(99.0)];
        let bad: Vec<Window> = (0..10).map(|i| win(i, 0)).collect();
        // 8 s of bad seconds after the fault, but the objective allows 30 s: no evidence.
        let (after, v) = judge_recovery(&bad, 2.0, &[1.0], &obj, 3, 30.0);
        assert_eq!((after, v), (None, RecoveryVerdict::Unmeasured));
        // 5 s allowed, and all 8 s seen bad: evidence against.
        let (_, v) = judge_recovery(&bad, 2.0, &[1.0], &obj, 3, 5.0);
        assert_eq!(v, RecoveryVerdict::NotRecovered);
    }
}
