//! One-second windows: the collector task that, at each second of the run, takes every
//! worker's tally, records it into the window's histograms, judges whether the generator can
//! be trusted for that second, and sends the [`Window`] to the engine; it also keeps the
//! whole-run totals for [`super::LoadSummary`].
//!
//! A request belongs to the window in which it completed (its latency may have started
//! earlier): that is when a user would have felt it, and it keeps windows closed on time
//! instead of waiting for stragglers.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::error::ErrorCounts;
use super::hist::{new_histogram, HistBlob, HistSet, Percentiles};
use super::schedule::Schedule;
use super::worker::{Shared, Slot, Tally};

/// One second of load, as the engine judges it live and the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// 0-based second of the run.
    pub index: u64,
    /// Start, seconds since the run began.
    pub start_s: f64,
    /// Length in seconds (1, except the last window of a run).
    pub duration_s: f64,
    /// Requests completed in this window (`ok` + every error class).
    pub requests: u64,
    /// Requests answered 1xx-3xx.
    pub ok: u64,
    /// Requests not sent: no connection was free for them within the timeout.
    pub dropped: u64,
    /// Requests sent later than `max_lag` after their intended time because every connection
    /// was busy (their wait is in `latency`).
    pub late: u64,
    /// Failed requests by class.
    pub errors: ErrorCounts,
    /// Requests per second requested by the schedule over this window (open model only).
    pub rate_requested: Option<f64>,
    /// Requests completed per second.
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

/// The three live histograms, reused from window to window.
pub(crate) struct Hists {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
}

impl Hists {
    pub fn new() -> Hists {
        Hists {
            latency: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
        }
    }

    fn reset(&mut self) {
        self.latency.reset();
        self.service.reset();
        self.lag.reset();
    }

    fn add(&mut self, other: &Hists) {
        // Same shape by construction: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        let _ = self.lag.add(&other.lag);
    }

    pub fn encode(&self) -> HistSet {
        HistSet {
            latency: HistBlob::encode(&self.latency),
            service: HistBlob::encode(&self.service),
            lag: HistBlob::encode(&self.lag),
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
    pub windows: u64,
    pub untrusted: Vec<u64>,
}

/// The collector task. Ends at `stop` (after a last, partial window) or at `cancel`.
pub(crate) async fn collect(
    shared: Arc<Shared>,
    slots: Vec<Arc<Slot>>,
    sched: Option<watch::Receiver<Arc<Schedule>>>,
    tx: mpsc::UnboundedSender<Window>,
    stop: CancellationToken,
) -> Totals {
    let mut cur = Hists::new();
    let mut heartbeat = new_histogram();
    let mut totals = Totals {
        hists: Hists::new(),
        ok: 0,
        errors: [0; 9],
        dropped: 0,
        late: 0,
        windows: 0,
        untrusted: Vec::new(),
    };
    let mut spare = Tally::default();
    let max_lag_ms = shared.plan.max_lag.as_secs_f64() * 1000.0;
    let mut index = 0u64;
    // Windows end on whole seconds of the caller's clock (`first_window + k` s after t0) and
    // at each cut in between; an edge within a millisecond of a whole second is that second.
    const EPS: Duration = Duration::from_millis(1);
    let mut whole = shared.first_window;
    let mut cuts = shared.cuts.iter().copied().peekable();
    let mut start = Duration::ZERO;
    loop {
        while cuts.next_if(|c| *c <= start + EPS).is_some() {}
        let boundary = match cuts.peek() {
            Some(&c) if c + EPS < whole => c,
            _ => whole,
        };
        let end = shared.t0 + boundary;
        let last = tokio::select! {
            _ = tokio::time::sleep_until(end.into()) => false,
            _ = stop.cancelled() => true,
            _ = shared.cancel.cancelled() => true,
        };
        let start_s = start.as_secs_f64();
        let end_s = if last {
            shared.t0.elapsed().as_secs_f64().max(start_s)
        } else {
            boundary.as_secs_f64()
        };
        let mut w = WindowCounts::default();
        cur.reset();
        heartbeat.reset();
        for slot in &slots {
            {
                let mut t = slot.0.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::swap(&mut *t, &mut spare);
            }
            w.add(&spare, &mut cur, &mut heartbeat);
            spare.clear();
        }
        let duration_s = end_s - start_s;
        // An empty last window (finish right on a second boundary) says nothing: skip it.
        if !(last && w.is_empty() && duration_s < 0.001) {
            let rate_requested = sched.as_ref().map(|rx| {
                let s = rx.borrow();
                if duration_s > 0.0 {
                    (s.count_at(end_s) - s.count_at(start_s)) / duration_s
                } else {
                    s.rate_at(start_s)
                }
            });
            let lag = Percentiles::of(&cur.lag);
            let hb = Percentiles::of(&heartbeat);
            let trusted = lag.p99 <= max_lag_ms && hb.p99 <= max_lag_ms;
            let requests = w.ok + w.errors.iter().sum::<u64>();
            let window = Window {
                index,
                start_s,
                duration_s,
                requests,
                ok: w.ok,
                dropped: w.dropped,
                late: w.late,
                errors: ErrorCounts::from_array(&w.errors),
                rate_requested,
                rate_achieved: if duration_s > 0.0 {
                    requests as f64 / duration_s
                } else {
                    0.0
                },
                latency: Percentiles::of(&cur.latency),
                service: Percentiles::of(&cur.service),
                lag,
                heartbeat_p99_ms: hb.p99,
                trusted,
                histograms: cur.encode(),
            };
            totals.hists.add(&cur);
            totals.ok += w.ok;
            for (a, b) in totals.errors.iter_mut().zip(w.errors) {
                *a += b;
            }
            totals.dropped += w.dropped;
            totals.late += w.late;
            totals.windows += 1;
            if !trusted {
                totals.untrusted.push(index);
            }
            // The engine may have stopped listening (it judged enough): the totals still count.
            let _ = tx.send(window);
        }
        if last {
            return totals;
        }
        index += 1;
        if boundary + EPS >= whole {
            whole += Duration::from_secs(1);
        }
        start = boundary;
    }
}

#[derive(Default)]
struct WindowCounts {
    ok: u64,
    errors: [u64; 9],
    dropped: u64,
    late: u64,
}

impl WindowCounts {
    fn add(&mut self, t: &Tally, h: &mut Hists, heartbeat: &mut Histogram<u64>) {
        self.ok += t.ok;
        for (a, b) in self.errors.iter_mut().zip(t.errors) {
            *a += b;
        }
        self.dropped += t.dropped;
        self.late += t.late;
        for &(lat, svc) in &t.timed {
            h.latency.saturating_record(u64::from(lat));
            h.service.saturating_record(u64::from(svc));
        }
        for &l in &t.lag {
            h.lag.saturating_record(u64::from(l));
        }
        for &b in &t.heartbeat {
            heartbeat.saturating_record(u64::from(b));
        }
    }

    fn is_empty(&self) -> bool {
        self.ok == 0 && self.errors.iter().all(|e| *e == 0) && self.dropped == 0
    }
}
