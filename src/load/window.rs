//! Windows of load: the collector task that puts every request's outcome in the window of its
//! *intended* send time, keeps each window open until every outcome it can have is known, then
//! sends it to the engine as a final [`Window`]; meanwhile it publishes a [`LiveView`] of the
//! windows still open, for what must act during the run (stop conditions, the progress line,
//! `/metrics`).
//!
//! Why attribution by intended time: a gameday asks what users felt *when* the fault was on.
//! Counting a request where it completes moves a blackhole's timeouts ten seconds later and
//! its backlog into the first second after the revert, so the outage reads as a short blip in
//! the recovery phase. Here a request meant for second 12 that timed out at second 22 is a
//! failure of second 12:
//!
//! ```text
//!  second        12        13        14   ...   22        23
//!  intended   ──●───────────────────────────────────────────────
//!  outcome                                        ✗ timeout (10 s)
//!  window 12  [open ─────────────────────────────────────] final at 23 + grace
//! ```
//!
//! A window `[s, e)` becomes final once `e + timeout` (+ a short grace for the workers to
//! record) has passed: by then every request intended in it has an outcome, because a
//! request's deadline is its intended time plus the timeout, and one that no connection could
//! take before its deadline is *dropped* (a failure of its second, counted apart). The
//! collector drops such requests itself when every worker is stuck, so a total hang does not
//! wait for a worker to come free before it shows. The journal, report and verdict read final
//! windows only; the live view may hold provisional numbers but never calls a second "good"
//! before it is.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::error::ErrorCounts;
use super::hist::{new_histogram, HistBlob, HistSet, Percentiles};
use super::schedule::Schedule;
use super::worker::{Kind, Sample, Shared, Slot, Tally};

/// One window of load (normally one second), as the journal keeps it and the verdict judges
/// it: every request *intended* in it, whenever it completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// 0-based index in the run.
    pub index: u64,
    /// Start, seconds since the run began.
    pub start_s: f64,
    /// Length in seconds (1, except the first and last windows and those cut at a phase
    /// start).
    pub duration_s: f64,
    /// Requests intended in this window that got an outcome (`ok` + every error class).
    pub requests: u64,
    /// Requests answered 1xx-3xx.
    pub ok: u64,
    /// Requests intended in this window and not sent: no connection was free for them before
    /// their deadline (or the generator could not send in time). They failed for users.
    pub dropped: u64,
    /// Requests sent later than `max_lag` after their intended time because every connection
    /// was busy (their wait is in `latency`).
    pub late: u64,
    /// Times a request was sent again on a fresh connection because a reused keep-alive
    /// connection refused its first byte (idempotent methods only; never once a byte left).
    /// Each request is still counted once, by its final outcome.
    #[serde(default)]
    pub retries: u64,
    /// Closed model only: requests were outstanding for the whole window and none completed
    /// in it (a hang). Such a second counts as unavailable.
    #[serde(default)]
    pub stalled: bool,
    /// Failed requests by class.
    pub errors: ErrorCounts,
    /// Requests per second requested by the schedule over this window (open model only).
    pub rate_requested: Option<f64>,
    /// Requests with an outcome per second.
    pub rate_achieved: f64,
    /// Latency from the intended send time, ms (coordinated-omission corrected).
    pub latency: Percentiles,
    /// Service time from the actual send, ms (what the target did).
    pub service: Percentiles,
    /// Generator lag, ms (actual send vs when it could have been sent).
    pub lag: Percentiles,
    /// p99 lateness of the generator's heartbeat, ms: the runtime's own starvation.
    pub heartbeat_p99_ms: f64,
    /// False when the generator itself was late (lag or heartbeat p99 above `max_lag`):
    /// this window's latencies may be the generator's fault, not the target's.
    pub trusted: bool,
    /// The histograms, for merging into phases and re-rendering later.
    pub histograms: HistSet,
}

impl Window {
    /// Requests users asked for in this window: with an outcome, or dropped.
    pub fn attempted(&self) -> u64 {
        self.requests + self.dropped
    }
}

/// A window that is not final yet, as the live view shows it: outcomes known so far and the
/// requests still waiting for one (`pending`), with their ages.
#[derive(Debug, Clone)]
pub struct LiveWindow {
    /// As [`Window::index`].
    pub index: u64,
    /// As [`Window::start_s`].
    pub start_s: f64,
    /// As [`Window::duration_s`].
    pub duration_s: f64,
    /// Requests answered 1xx-3xx so far.
    pub ok: u64,
    /// Failed requests by class so far.
    pub errors: ErrorCounts,
    /// Dropped so far.
    pub dropped: u64,
    /// Requests intended in this window with no outcome yet (in flight or waiting for a
    /// connection): their outcome is unknown, but their wait is not.
    pub pending: u64,
    /// Requests still without an outcome past their deadline (a worker starved): failed for
    /// the live view, as they will be once final.
    pub overdue: u64,
    /// Closed model: a hang in this window (see [`Window::stalled`]).
    pub stalled: bool,
    /// Latency of the completed requests, µs.
    latency: Histogram<u64>,
    /// How long each pending request has waited so far, µs: a lower bound of its latency.
    pending_ages_us: Vec<u64>,
    /// The load's timeout, µs: an upper bound of a pending request's latency.
    timeout_us: u64,
}

impl LiveWindow {
    /// Requests asked for in it so far: with an outcome, dropped, or pending.
    pub fn attempted(&self) -> u64 {
        self.ok + self.failed() + self.pending
    }

    /// Failed so far (errors, drops and requests overdue).
    pub fn failed(&self) -> u64 {
        self.errors.total() + self.dropped + self.overdue
    }

    /// The latency percentile, ms, as a range: `low` counts every pending request at its age
    /// so far (a request in flight past a threshold is already slow), `high` at the timeout
    /// (the most it can wait before it fails). The final value lies between them, unless a
    /// pending request ends in a fast failure, which carries no latency.
    pub fn latency_bounds(&self, percentile: f64) -> (f64, f64) {
        let q = (percentile / 100.0).clamp(0.0, 1.0);
        let mut low = self.latency.clone();
        let mut high = self.latency.clone();
        for &a in &self.pending_ages_us {
            low.saturating_record(a.max(1));
        }
        // Pending requests without a known age (e.g. caught between two states) count at the
        // window's own age at least, which is below any of theirs.
        let unknown = self
            .pending
            .saturating_sub(self.pending_ages_us.len() as u64);
        if unknown > 0 {
            let _ = low.record_n(1, unknown);
        }
        if self.pending > 0 {
            let _ = high.record_n(self.timeout_us.max(1), self.pending);
        }
        let ms = |h: &Histogram<u64>| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        (ms(&low), ms(&high))
    }
}

/// The windows not final yet that have ended, oldest first, as of the collector's last tick.
#[derive(Debug, Clone, Default)]
pub struct LiveView {
    /// Ended, not final windows, oldest first. Windows before the first one are final and
    /// were sent on the final channel before this view was published.
    pub windows: Vec<LiveWindow>,
}

/// Time the workers get, past a request's deadline, to record it before its window is
/// finalized without it (a descheduled thread). A request still unrecorded then is a timeout.
const GRACE: Duration = Duration::from_millis(250);
/// Further wait for a window whose count of outcomes does not add up yet, before it is
/// finalized with the missing requests counted as failed.
const FORCE: Duration = Duration::from_secs(2);

/// A window still open in the collector.
struct Open {
    index: u64,
    start: Duration,
    end: Duration,
    ok: u64,
    errors: [u64; 9],
    dropped: u64,
    late: u64,
    retries: u64,
    /// Open model: requests the schedule placed in this window so far.
    arrivals: u64,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    lag: Histogram<u64>,
    heartbeat: Vec<u32>,
    /// Closed model: requests that completed during the window (by completion time).
    completed_during: u64,
    stalled: bool,
}

impl Open {
    fn new(index: u64, start: Duration, end: Duration) -> Open {
        Open {
            index,
            start,
            end,
            ok: 0,
            errors: [0; 9],
            dropped: 0,
            late: 0,
            retries: 0,
            arrivals: 0,
            latency: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
            heartbeat: Vec::new(),
            completed_during: 0,
            stalled: false,
        }
    }

    fn outcomes(&self) -> u64 {
        self.ok + self.errors.iter().sum::<u64>() + self.dropped
    }

    fn add(&mut self, s: &Sample) {
        match s.kind {
            Kind::Ok => self.ok += 1,
            Kind::Error(c) => self.errors[c.index()] += 1,
            Kind::Dropped => self.dropped += 1,
        }
        if s.late {
            self.late += 1;
        }
        self.retries += u64::from(s.retries);
        if let Some((lat, svc)) = s.timed {
            self.latency.saturating_record(u64::from(lat));
            self.service.saturating_record(u64::from(svc));
        }
        if let Some(l) = s.lag_us {
            self.lag.saturating_record(u64::from(l));
        }
    }
}

/// Whole-run accumulation, handed to `finish`.
pub(crate) struct Totals {
    pub hists: Hists,
    pub ok: u64,
    pub errors: [u64; 9],
    pub dropped: u64,
    pub late: u64,
    pub retries: u64,
    pub windows: u64,
    pub untrusted: Vec<u64>,
    pub stalled: u64,
}

/// The three whole-run histograms.
pub(crate) struct Hists {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
}

impl Hists {
    fn new() -> Hists {
        Hists {
            latency: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
        }
    }

    pub fn encode(&self) -> HistSet {
        HistSet {
            latency: HistBlob::encode(&self.latency),
            service: HistBlob::encode(&self.service),
            lag: HistBlob::encode(&self.lag),
        }
    }
}

/// The collector's state between ticks.
struct Collector {
    shared: Arc<Shared>,
    slots: Vec<Arc<Slot>>,
    sched: Option<watch::Receiver<Arc<Schedule>>>,
    /// Open windows, oldest first; indices are consecutive.
    open: std::collections::VecDeque<Open>,
    /// Index of the next window to create.
    next_index: u64,
    /// Start of the next window to create.
    next_start: Duration,
    /// Open model: the next request index the schedule has not placed in a window yet.
    cursor: u64,
    /// Closed model: completions drained since the last edge.
    completed_since_edge: u64,
    /// The first window whose end has not been closed yet ([`Collector::close_edge`]).
    next_to_close: u64,
    /// Samples that came after their window was final (a thread starved past the grace):
    /// already counted as failed there, so not counted again.
    late_records: u64,
    totals: Totals,
    spare: Tally,
    timeout: Duration,
    max_lag_ms: f64,
}

impl Collector {
    fn ns(d: Duration) -> u64 {
        d.as_nanos().min(u128::from(u64::MAX)) as u64
    }

    fn end_time(&self) -> Duration {
        Duration::from_nanos(self.shared.end_ns.load(Ordering::Acquire))
    }

    /// Creates windows up to and including `index`.
    fn ensure(&mut self, index: u64) {
        while self.next_index <= index {
            let end = self.shared.edges.next_after(self.next_start);
            self.open
                .push_back(Open::new(self.next_index, self.next_start, end));
            self.next_index += 1;
            self.next_start = end;
        }
    }

    fn window_mut(&mut self, index: u64) -> Option<&mut Open> {
        let first = self
            .open
            .front()
            .map(|w| w.index)
            .unwrap_or(self.next_index);
        if index < first {
            return None;
        }
        self.ensure(index);
        self.open.get_mut((index - first) as usize)
    }

    /// Intended time of request `i` on the current schedule, ns; `None` while the rate is 0.
    fn time_of(&self, i: u64) -> Option<u64> {
        let rx = self.sched.as_ref()?;
        let s = rx.borrow();
        s.time_of(i).map(|t| (t * 1e9) as u64)
    }

    /// Takes every worker's samples into their windows.
    fn drain(&mut self) {
        // The open model's pool grows: take the current list of slots.
        let slots = self
            .shared
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for slot in &slots {
            {
                let mut t = slot.tally.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::swap(&mut *t, &mut self.spare);
            }
            let mut spare = std::mem::take(&mut self.spare);
            self.completed_since_edge += spare.samples.len() as u64;
            for s in &spare.samples {
                let w = self.shared.edges.window_of(s.intended_ns);
                match self.window_mut(w) {
                    Some(win) => win.add(s),
                    None => self.late_records += 1,
                }
            }
            for &(at, late) in &spare.heartbeat {
                // A heartbeat belongs to the window it woke up in.
                let w = self.shared.edges.window_of(at);
                if let Some(win) = self.window_mut(w) {
                    win.heartbeat.push(late);
                }
            }
            spare.clear();
            self.spare = spare;
        }
        self.slots = slots;
    }

    /// Open model: places the schedule's arrivals up to `now` (and before the end) in their
    /// windows, and drops at their intended second the requests whose deadline has passed
    /// with no worker to take them.
    fn schedule(&mut self, now_ns: u64) {
        if self.sched.is_none() {
            return;
        }
        let end = self.shared.end_ns.load(Ordering::Acquire);
        let limit = now_ns.min(end);
        while let Some(t) = self.time_of(self.cursor) {
            if t > limit || t >= end {
                break;
            }
            let w = self.shared.edges.window_of(t);
            if let Some(win) = self.window_mut(w) {
                win.arrivals += 1;
            }
            self.cursor += 1;
        }
        let timeout_ns = Self::ns(self.timeout);
        // Requests whose deadline is gone, not yet taken by a worker: take them (so no worker
        // sends them late) and count them dropped.
        loop {
            let cur = self.shared.ticket.load(Ordering::Acquire);
            let mut target = cur;
            while target < self.cursor {
                match self.time_of(target) {
                    Some(t) if t + timeout_ns <= now_ns && t < end => target += 1,
                    _ => break,
                }
            }
            if target == cur {
                break;
            }
            if self
                .shared
                .ticket
                .compare_exchange(cur, target, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            for i in cur..target {
                if let Some(t) = self.time_of(i) {
                    let w = self.shared.edges.window_of(t);
                    if let Some(win) = self.window_mut(w) {
                        win.dropped += 1;
                    } else {
                        self.late_records += 1;
                    }
                }
            }
            break;
        }
    }

    /// Requests sent and not recorded: (window, intended ns) per busy worker.
    fn in_flight(&self) -> Vec<(u64, u64)> {
        self.slots
            .iter()
            .filter_map(|s| match s.in_flight.load(Ordering::Acquire) {
                0 => None,
                v => Some((self.shared.edges.window_of(v - 1), v - 1)),
            })
            .collect()
    }

    /// Requests waiting for a connection (open model): (window, intended ns).
    fn backlog(&self, now_ns: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut i = self.shared.ticket.load(Ordering::Acquire);
        while i < self.cursor {
            match self.time_of(i) {
                Some(t) if t <= now_ns => out.push((self.shared.edges.window_of(t), t)),
                _ => break,
            }
            i += 1;
        }
        out
    }

    /// Requests of window `w` with no outcome yet.
    fn pending_of(&self, w: &Open, in_flight: &[(u64, u64)]) -> u64 {
        if self.sched.is_some() {
            w.arrivals.saturating_sub(w.outcomes())
        } else {
            in_flight.iter().filter(|(i, _)| *i == w.index).count() as u64
        }
    }

    /// Closed model, at the end of window `index`: a hang if requests sent before it are
    /// still outstanding and nothing completed during it.
    fn close_edge(&mut self, index: u64) {
        // When the collector was late and several windows ended since its last tick, each of
        // them is credited with the completions seen since: a hang is never claimed without
        // evidence.
        let completed = self.completed_since_edge;
        if self.sched.is_some() {
            return;
        }
        let Some(w) = self.open.iter().position(|w| w.index == index) else {
            return;
        };
        let start_ns = Self::ns(self.open[w].start);
        let stuck = self.slots.iter().any(|s| {
            s.in_flight.load(Ordering::Acquire) != 0
                && s.sent_ns.load(Ordering::Relaxed) <= start_ns
        });
        let win = &mut self.open[w];
        win.completed_during = completed;
        win.stalled = stuck && completed == 0;
    }

    /// Turns the oldest open window into a final one, counting requests still unknown as
    /// failed: in flight past their deadline as timeouts, the rest as dropped.
    fn finalize_front(&mut self, in_flight: &[(u64, u64)], cut_at: Option<Duration>) -> Window {
        let mut w = self.open.pop_front().expect("an open window");
        let missing = if self.sched.is_some() {
            w.arrivals.saturating_sub(w.outcomes())
        } else {
            in_flight.iter().filter(|(i, _)| *i == w.index).count() as u64
        };
        if missing > 0 {
            let stuck = in_flight.iter().filter(|(i, _)| *i == w.index).count() as u64;
            let timeouts = stuck.min(missing);
            w.errors[super::ErrorClass::RequestTimeout.index()] += timeouts;
            w.dropped += missing - timeouts;
            tracing::debug!(
                window = w.index,
                missing,
                "load window finalized with requests not recorded in time"
            );
        }
        let end = match cut_at {
            Some(c) => w.end.min(c).max(w.start),
            None => w.end,
        };
        let start_s = w.start.as_secs_f64();
        let end_s = end.as_secs_f64();
        let duration_s = end_s - start_s;
        let rate_requested = self.sched.as_ref().map(|rx| {
            let s = rx.borrow();
            if duration_s > 0.0 {
                (s.count_at(end_s) - s.count_at(start_s)) / duration_s
            } else {
                s.rate_at(start_s)
            }
        });
        let lag = Percentiles::of(&w.lag);
        let hb_p99 = p99_ms(&mut w.heartbeat);
        let trusted = lag.p99 <= self.max_lag_ms && hb_p99 <= self.max_lag_ms;
        let errors_total: u64 = w.errors.iter().sum();
        let requests = w.ok + errors_total;
        let window = Window {
            index: w.index,
            start_s,
            duration_s,
            requests,
            ok: w.ok,
            dropped: w.dropped,
            late: w.late,
            retries: w.retries,
            stalled: w.stalled,
            errors: ErrorCounts::from_array(&w.errors),
            rate_requested,
            rate_achieved: if duration_s > 0.0 {
                requests as f64 / duration_s
            } else {
                0.0
            },
            latency: Percentiles::of(&w.latency),
            service: Percentiles::of(&w.service),
            lag,
            heartbeat_p99_ms: hb_p99,
            trusted,
            histograms: HistSet {
                latency: HistBlob::encode(&w.latency),
                service: HistBlob::encode(&w.service),
                lag: HistBlob::encode(&w.lag),
            },
        };
        let t = &mut self.totals;
        let _ = t.hists.latency.add(&w.latency);
        let _ = t.hists.service.add(&w.service);
        let _ = t.hists.lag.add(&w.lag);
        t.ok += w.ok;
        for (a, b) in t.errors.iter_mut().zip(w.errors) {
            *a += b;
        }
        t.dropped += w.dropped;
        t.late += w.late;
        t.retries += w.retries;
        t.windows += 1;
        if w.stalled {
            t.stalled += 1;
        }
        if !trusted {
            t.untrusted.push(w.index);
        }
        window
    }

    /// The live view of the windows that have ended by `now` and are not final.
    fn live(&self, now: Duration, in_flight: &[(u64, u64)], backlog: &[(u64, u64)]) -> LiveView {
        let now_ns = Self::ns(now);
        let timeout_us = self.timeout.as_micros() as u64;
        let windows = self
            .open
            .iter()
            .filter(|w| w.end <= now)
            .map(|w| {
                let (ages, overdue): (Vec<u64>, Vec<u64>) = in_flight
                    .iter()
                    .chain(backlog)
                    .filter(|(i, _)| *i == w.index)
                    .map(|(_, t)| now_ns.saturating_sub(*t) / 1000)
                    .partition(|age| *age < timeout_us);
                let overdue = overdue.len() as u64;
                let pending = self.pending_of(w, in_flight).saturating_sub(overdue);
                LiveWindow {
                    index: w.index,
                    start_s: w.start.as_secs_f64(),
                    duration_s: (w.end - w.start).as_secs_f64(),
                    ok: w.ok,
                    errors: ErrorCounts::from_array(&w.errors),
                    dropped: w.dropped,
                    pending,
                    overdue,
                    stalled: w.stalled,
                    latency: w.latency.clone(),
                    pending_ages_us: ages,
                    timeout_us,
                }
            })
            .collect();
        LiveView { windows }
    }
}

/// p99 of heartbeat lateness samples (µs), in ms.
fn p99_ms(v: &mut [u32]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let k = ((v.len() as f64) * 0.99).ceil() as usize;
    let k = k.clamp(1, v.len()) - 1;
    let (_, x, _) = v.select_nth_unstable(k);
    f64::from(*x) / 1000.0
}

/// The collector task. Ends at `stop` (after finalizing every window) or at `cancel`.
pub(crate) async fn collect(
    shared: Arc<Shared>,
    sched: Option<watch::Receiver<Arc<Schedule>>>,
    tx: mpsc::UnboundedSender<Window>,
    live_tx: watch::Sender<Arc<LiveView>>,
    stop: CancellationToken,
) -> Totals {
    let timeout = shared.plan.timeout;
    let mut c = Collector {
        max_lag_ms: shared.plan.max_lag.as_secs_f64() * 1000.0,
        shared,
        slots: Vec::new(),
        sched,
        open: Default::default(),
        next_index: 0,
        next_start: Duration::ZERO,
        cursor: 0,
        completed_since_edge: 0,
        next_to_close: 0,
        late_records: 0,
        totals: Totals {
            hists: Hists::new(),
            ok: 0,
            errors: [0; 9],
            dropped: 0,
            late: 0,
            retries: 0,
            windows: 0,
            untrusted: Vec::new(),
            stalled: 0,
        },
        spare: Tally::default(),
        timeout,
    };
    c.ensure(0);
    loop {
        // Wake at the next window edge, and when the oldest open window may become final.
        let now = c.shared.t0.elapsed();
        let next_edge = c.shared.edges.next_after(now);
        let next_final = c.open.front().map(|w| w.end + timeout + GRACE);
        let wake = next_final.map_or(next_edge, |f| f.min(next_edge).max(now));
        let last = tokio::select! {
            _ = tokio::time::sleep_until((c.shared.t0 + wake).into()) => false,
            _ = stop.cancelled() => true,
            _ = c.shared.cancel.cancelled() => true,
        };
        let now = c.shared.t0.elapsed();
        let now_ns = Collector::ns(now);
        c.drain();
        c.schedule(now_ns);
        // Windows that ended by now exist (even when silent), and each one's edge is closed.
        c.ensure(c.shared.edges.window_of(now_ns));
        let ended: Vec<u64> = c
            .open
            .iter()
            .filter(|w| w.end <= now && w.index >= c.next_to_close)
            .map(|w| w.index)
            .collect();
        for j in ended {
            c.close_edge(j);
            c.next_to_close = j + 1;
        }
        c.completed_since_edge = 0;
        let in_flight = c.in_flight();
        if last {
            return finish(c, &tx, &live_tx, &in_flight);
        }
        while let Some(front) = c.open.front() {
            let due = front.end + timeout + GRACE;
            if now < due || front.end > now {
                break;
            }
            let pending = c.pending_of(front, &in_flight);
            if pending > 0 && now < due + FORCE {
                break;
            }
            let w = c.finalize_front(&in_flight, None);
            // The engine may have stopped listening (it judged enough): the totals still count.
            let _ = tx.send(w);
        }
        if c.open.is_empty() {
            c.ensure(c.next_index);
        }
        let backlog = c.backlog(now_ns);
        let view = c.live(now, &in_flight, &backlog);
        live_tx.send_replace(Arc::new(view));
    }
}

/// The end of the run: every window up to the end of sending becomes final.
fn finish(
    mut c: Collector,
    tx: &mpsc::UnboundedSender<Window>,
    live_tx: &watch::Sender<Arc<LiveView>>,
    in_flight: &[(u64, u64)],
) -> Totals {
    let end = c.end_time().min(c.shared.t0.elapsed());
    let end_ns = Collector::ns(end);
    // Requests the schedule placed before the end that no worker took: never sent.
    if c.sched.is_some() {
        c.schedule(end_ns);
        let cur = c.shared.ticket.fetch_max(c.cursor, Ordering::AcqRel);
        for i in cur..c.cursor {
            if let Some(t) = c.time_of(i) {
                let w = c.shared.edges.window_of(t);
                if let Some(win) = c.window_mut(w) {
                    win.dropped += 1;
                }
            }
        }
    }
    while let Some(front) = c.open.front() {
        // Nothing is intended at or after the end; a sliver before it that holds nothing says
        // nothing either.
        let empty = front.outcomes() == 0 && front.arrivals == 0;
        if front.start >= end || (empty && end.saturating_sub(front.start) < super::edges::EPS) {
            break;
        }
        let w = c.finalize_front(in_flight, Some(end));
        let _ = tx.send(w);
    }
    if c.late_records > 0 {
        tracing::debug!(
            samples = c.late_records,
            "load samples recorded after their window was final (counted as failed there)"
        );
    }
    live_tx.send_replace(Arc::new(LiveView::default()));
    c.totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ok: u64, pending: u64, ages_ms: &[u64], completed_ms: &[u64]) -> LiveWindow {
        let mut latency = new_histogram();
        for &c in completed_ms {
            latency.saturating_record(c * 1000);
        }
        LiveWindow {
            index: 0,
            start_s: 0.0,
            duration_s: 1.0,
            ok,
            errors: ErrorCounts::default(),
            dropped: 0,
            pending,
            overdue: 0,
            stalled: false,
            latency,
            pending_ages_us: ages_ms.iter().map(|a| a * 1000).collect(),
            timeout_us: 10_000_000,
        }
    }

    #[test]
    fn pending_requests_bound_the_latency_from_both_sides() {
        // 98 answered in 10 ms, 2 still in flight for 3 s: p99 is at least 3 s already and
        // at most the 10 s timeout.
        let w = live(98, 2, &[3000, 3000], &[10; 98]);
        let (lo, hi) = w.latency_bounds(99.0);
        assert!((2990.0..=3010.0).contains(&lo), "{lo}");
        assert!((9990.0..=10_010.0).contains(&hi), "{hi}");
        // Nothing pending: one value.
        let w = live(100, 0, &[], &[10; 100]);
        let (lo, hi) = w.latency_bounds(99.0);
        assert_eq!(lo, hi);
    }
}
