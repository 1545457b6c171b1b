//! The load generator: open-model (constant arrival rate, per-phase rates and linear ramps) or
//! closed-model (fixed concurrency) HTTP load, measured with HdrHistograms in one-second
//! windows, and the `gameday load` command that offers it on its own.
//!
//! A gameday's verdict is only as true as its measurement, so the generator measures itself
//! too. Each window carries three histograms: latency from the *intended* send time (what users
//! feel; a stalled target shows in the percentiles instead of hiding, as in wrk2), service time
//! from the actual send (what the target did), and the generator's own lag; a window whose lag
//! is above `max_lag` is marked untrusted rather than blamed on the target.
//!
//! How the engine uses it:
//! 1. [`start`] with the scenario's [`LoadSpec`] and a child of the run's cancellation token;
//!    it returns a [`LoadHandle`] and a receiver of final [`Window`]s, one per second of
//!    intended send time, each sent once every outcome it can have is known (the load's
//!    `timeout` after its end), for the journal and the verdict; [`LoadHandle::live`] gives the
//!    [`LiveView`] of the windows not final yet, for the stop conditions and progress.
//! 2. At each phase start, [`LoadHandle::apply_phase`] (or [`LoadHandle::set_rate`]).
//! 3. [`LoadHandle::finish`] at the end: stops sending, lets requests in flight complete (bounded
//!    by the timeouts), sends the last partial window and returns the [`LoadSummary`].
//!
//! Phase figures are the merge of their windows' histograms ([`HistSet::merge`], then
//! [`Percentiles::of_blob`]). Files: [`spec`] (YAML model and validation), [`schedule`]
//! (arrival times), [`client`] (HTTP, error classes), [`tls`] (TLS client), [`worker`] (hot path), [`window`]
//! (collector), [`hist`] (histograms), [`cli`] (`gameday load`).

pub mod cli;
pub(crate) mod client;
pub(crate) mod edges;
pub mod error;
pub(crate) mod h1;
pub mod hist;
pub(crate) mod schedule;
pub mod spec;
pub(crate) mod tls;
pub mod window;
pub(crate) mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use error::{ErrorClass, ErrorCounts, LoadError};
pub use hist::{merge, HistBlob, HistSet, Percentiles};
pub use spec::{parse_rate, EndpointSpec, LoadSpec, PhaseLoad};
pub use window::{LiveView, LiveWindow, Window};

use schedule::Schedule;
use worker::{Pool, Shared, Slot};

/// Totals of a whole run, with its merged histograms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSummary {
    /// Length of the sending part of the run, seconds.
    pub duration_s: f64,
    /// Mean rate the schedule asked for over the run (open model only).
    pub rate_requested: Option<f64>,
    /// Requests completed per second of `duration_s`.
    pub rate_achieved: f64,
    /// Requests with an outcome (`ok` + every error class).
    pub requests: u64,
    /// Requests answered 1xx-3xx.
    pub ok: u64,
    /// Requests not sent: no connection was free for them before their deadline.
    pub dropped: u64,
    /// Connections the generator opened at most (the open model's pool grows when every
    /// connection is busy, up to `max_connections`).
    pub connections_peak: usize,
    /// Requests sent late because every connection was busy.
    pub late: u64,
    /// Times a request was sent again after a reused connection failed under it (idempotent
    /// methods only; each request still counts once).
    #[serde(default)]
    pub retries: u64,
    /// Closed model: windows in which requests were outstanding and none completed.
    #[serde(default)]
    pub stalled_windows: u64,
    /// Failed requests by class.
    pub errors: ErrorCounts,
    /// Latency from the intended send time, ms.
    pub latency: Percentiles,
    /// Service time from the actual send, ms.
    pub service: Percentiles,
    /// Generator lag, ms.
    pub lag: Percentiles,
    /// Number of one-second windows.
    pub windows: u64,
    /// Indices of windows where the generator was too late to trust.
    pub untrusted_windows: Vec<u64>,
    /// The whole run's histograms.
    pub histograms: HistSet,
}

/// Controls a running load: change its rate, end it. Dropping it without `finish` cancels the
/// run's tasks through their cancellation token.
pub struct LoadHandle {
    shared: Arc<Shared>,
    sched_tx: Option<watch::Sender<Arc<Schedule>>>,
    /// Workers on the caller's runtime (`threads: 0`).
    tasks: JoinSet<()>,
    /// One per load thread, resolved when the thread's workers have all ended.
    threads_done: Vec<tokio::sync::oneshot::Receiver<()>>,
    collector: tokio::task::JoinHandle<window::Totals>,
    collector_stop: CancellationToken,
    live: watch::Receiver<Arc<LiveView>>,
}

/// Starts the load now. Must be called inside a tokio runtime. The spec is validated first:
/// an error means nothing was sent. The workers run on their own threads (`threads`, default
/// one per CPU), each a single-threaded runtime with its share of the connections, like wrk's
/// threads: no cross-thread wake-ups on the request path, and the engine's own work cannot
/// delay a request (nor the reverse); the collector runs on the caller's runtime. `cancel` abandons everything at once (requests in flight
/// included); the normal end is [`LoadHandle::finish`].
pub fn start(
    spec: &LoadSpec,
    cancel: CancellationToken,
) -> Result<(LoadHandle, mpsc::UnboundedReceiver<Window>), LoadError> {
    start_on_clock(spec, cancel, None)
}

/// The caller's clock for the windows of [`start_on_clock`].
#[derive(Debug, Clone)]
pub struct Clock {
    /// An instant at or before the load's start: windows end on its whole seconds.
    pub epoch: Instant,
    /// Further window edges, as offsets from `epoch` (a gameday's phase starts): a window
    /// that would straddle one ends there instead, and the next begins there.
    pub cuts: Vec<Duration>,
}

/// [`start`], with window boundaries on whole seconds of the caller's clock and at each of
/// its cuts: the first window is then shorter than a second, and no window straddles a
/// whole second or a cut. A gameday passes its run's start and its phases' starts, so that
/// every window lies in one phase (a baseline must not count the first fraction of a
/// second of the chaos after it, even when a phase lasts 2.5 s).
pub fn start_on_clock(
    spec: &LoadSpec,
    cancel: CancellationToken,
    clock: Option<Clock>,
) -> Result<(LoadHandle, mpsc::UnboundedReceiver<Window>), LoadError> {
    let plan = spec.resolve()?;
    // Our own child: cancelling it (on drop) never reaches the caller's token.
    let cancel = cancel.child_token();
    let rate = plan.rate;
    let connections = plan.connections;
    let threads = plan.threads;
    let t0 = Instant::now();
    let (first_window, cuts) = match clock {
        Some(c) => {
            let offset = t0.saturating_duration_since(c.epoch);
            let frac = offset.as_secs_f64().fract();
            // Within a millisecond of a boundary: a full first window.
            let first = if !(1e-3..=1.0 - 1e-3).contains(&frac) {
                Duration::from_secs(1)
            } else {
                Duration::from_secs_f64(1.0 - frac)
            };
            let mut cuts: Vec<Duration> = c
                .cuts
                .iter()
                .filter_map(|cut| cut.checked_sub(offset))
                .filter(|cut| !cut.is_zero())
                .collect();
            cuts.sort();
            (first, cuts)
        }
        None => (Duration::from_secs(1), Vec::new()),
    };
    let shared = Arc::new(Shared {
        plan,
        t0,
        ticket: AtomicU64::new(0),
        end_ns: AtomicU64::new(u64::MAX),
        stop: cancel.child_token(),
        stopping: AtomicBool::new(false),
        cancel,
        edges: edges::Edges::new(first_window, cuts),
        slots: std::sync::Mutex::new(Vec::new()),
        workers: std::sync::atomic::AtomicUsize::new(if rate.is_some() { connections } else { 0 }),
        idle: std::sync::atomic::AtomicUsize::new(0),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    let mut threads_done = Vec::new();
    // Every slot goes into the shared list before its worker can run: a worker that grows the
    // pool adds its own slot there, which an assignment after the spawns would overwrite (and
    // its requests would never be counted).
    let add_slot = |slot: &Arc<Slot>| {
        shared
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(slot.clone());
    };
    let sched_tx = rate.map(|r| watch::channel(Arc::new(Schedule::constant(r))).0);
    // One group of workers (plus its heartbeat) per thread, or a single group on the caller's
    // runtime when `threads` is 0.
    let groups = match threads {
        0 => 1,
        n => n.min(connections),
    };
    for g in 0..groups {
        // The group's tracker (the open model spawns more workers into it) and its one permit
        // to sleep on a future request (see `worker::open_worker`).
        let pool = Arc::new(Pool {
            tracker: tokio_util::task::TaskTracker::new(),
            sleeper: tokio::sync::Semaphore::new(1),
        });
        let mut futures: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> =
            Vec::new();
        for _ in (g..connections).step_by(groups) {
            let slot = Arc::new(Slot::default());
            add_slot(&slot);
            let shared = shared.clone();
            futures.push(match &sched_tx {
                Some(tx) => Box::pin(worker::open_worker(
                    shared,
                    slot,
                    tx.subscribe(),
                    pool.clone(),
                    0,
                )),
                None => Box::pin(worker::closed_worker(shared, slot)),
            });
        }
        let hb = Arc::new(Slot::default());
        add_slot(&hb);
        futures.push(Box::pin(worker::heartbeat(shared.clone(), hb)));
        if threads == 0 {
            let pool = pool.clone();
            tasks.spawn(async move {
                for f in futures {
                    pool.tracker.spawn(f);
                }
                pool.tracker.close();
                pool.tracker.wait().await;
            });
            continue;
        }
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        threads_done.push(done_rx);
        let spawned = std::thread::Builder::new()
            .name(format!("gameday-load-{g}"))
            .spawn(move || {
                // Built here, not on the caller's thread: a runtime must not be dropped inside
                // another runtime, which a failed spawn would otherwise do.
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(async move {
                        for f in futures {
                            pool.tracker.spawn(f);
                        }
                        // Closed, it still takes the workers the open model adds later; it
                        // is done once every one of them has ended.
                        pool.tracker.close();
                        pool.tracker.wait().await;
                    }),
                    Err(e) => tracing::error!(
                        error = %e,
                        thread = g,
                        "cannot build a load thread's runtime: its connections send nothing"
                    ),
                }
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            // Threads already started stop with the token.
            shared.cancel.cancel();
            return Err(LoadError::Thread {
                reason: e.to_string(),
            });
        }
    }
    let collector_stop = CancellationToken::new();
    let (live_tx, live_rx) = watch::channel(Arc::new(LiveView::default()));
    let collector = tokio::spawn(window::collect(
        shared.clone(),
        sched_tx.as_ref().map(|t| t.subscribe()),
        tx,
        live_tx,
        collector_stop.clone(),
    ));
    Ok((
        LoadHandle {
            shared,
            sched_tx,
            tasks,
            threads_done,
            collector,
            collector_stop,
            live: live_rx,
        },
        rx,
    ))
}

impl LoadHandle {
    /// Changes the arrival rate, linearly over `ramp` (at once when zero). Open model only.
    pub fn set_rate(&self, rate: f64, ramp: Duration) -> Result<(), LoadError> {
        let tx = self.sched_tx.as_ref().ok_or(LoadError::ClosedModel)?;
        if !rate.is_finite() || rate < 0.0 {
            return Err(LoadError::OutOfRange {
                field: "rate",
                reason: format!("{rate} is not a rate (zero pauses the load)"),
            });
        }
        let now = self.shared.t0.elapsed().as_secs_f64();
        tx.send_modify(|s| *s = Arc::new(s.with_change(now, rate, ramp.as_secs_f64())));
        Ok(())
    }

    /// Applies a phase's override (rate and ramp); nothing when the phase sets no rate.
    pub fn apply_phase(&self, phase: &PhaseLoad) -> Result<(), LoadError> {
        match phase.rate {
            Some(r) => self.set_rate(r, phase.ramp_duration()),
            None => Ok(()),
        }
    }

    /// The live view: the windows that have ended and are not final yet, updated at every
    /// window edge (see [`window`]). What must act during the run reads it; the verdict reads
    /// the final windows.
    pub fn live(&self) -> watch::Receiver<Arc<LiveView>> {
        self.live.clone()
    }

    /// When the run started, on the monotonic clock (window `i` covers `i..i+1` s after it).
    pub fn started_at(&self) -> Instant {
        self.shared.t0
    }

    /// The rate the schedule asks for now (open model).
    pub fn current_rate(&self) -> Option<f64> {
        let now = self.shared.t0.elapsed().as_secs_f64();
        self.sched_tx.as_ref().map(|tx| tx.borrow().rate_at(now))
    }

    /// Sets the end of the sending part in advance: no request intended at or after `end`
    /// (since the start) is sent, and closed-model workers stop taking requests then. Call it
    /// when the duration is known up front (the CLI, a fixed scenario), so that a request due
    /// right at the end does not slip out before [`LoadHandle::finish_at`] runs.
    pub fn stop_at(&self, end: Duration) {
        let ns = end.as_nanos().min(u64::MAX as u128 - 1) as u64;
        self.shared.end_ns.fetch_min(ns, Ordering::AcqRel);
    }

    /// Ends the run now. See [`LoadHandle::finish_at`].
    pub async fn finish(self) -> LoadSummary {
        let now = self.shared.t0.elapsed();
        self.finish_at(now).await
    }

    /// Ends the run at `end` after its start (now, if that is past): no request intended at
    /// or after `end` is sent, requests in flight complete (bounded by the connect and
    /// request timeouts), the last partial window is sent, and the totals are returned.
    /// Ending at a schedule time rather than "when this call runs" makes a fixed-duration run
    /// send exactly rate x duration requests.
    pub async fn finish_at(mut self, end: Duration) -> LoadSummary {
        let shared = self.shared.clone();
        self.stop_at(end);
        // An earlier `stop_at` may have set an earlier end: that is the run's end.
        let end = end.min(Duration::from_nanos(shared.end_ns.load(Ordering::Acquire)));
        shared.stopping.store(true, Ordering::Release);
        shared.stop.cancel();
        let drain = shared.plan.timeout + shared.plan.connect_timeout + Duration::from_secs(1);
        let threads_done = std::mem::take(&mut self.threads_done);
        let joined = tokio::time::timeout(drain, async {
            while self.tasks.join_next().await.is_some() {}
            for done in threads_done {
                let _ = done.await;
            }
        })
        .await;
        if joined.is_err() {
            tracing::warn!(
                ?drain,
                "load workers did not drain in time; abandoning requests in flight"
            );
            // Load threads end their workers on the hard token.
            shared.cancel.cancel();
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        self.collector_stop.cancel();
        let totals = (&mut self.collector)
            .await
            .expect("the load collector does not panic");
        let duration_s = end.as_secs_f64();
        let rate_requested = self.sched_tx.as_ref().map(|tx| {
            let s = tx.borrow();
            if duration_s > 0.0 {
                s.count_at(duration_s) / duration_s
            } else {
                s.rate_at(0.0)
            }
        });
        let errors = ErrorCounts::from_array(&totals.errors);
        let requests = totals.ok + errors.total();
        LoadSummary {
            duration_s,
            rate_requested,
            rate_achieved: if duration_s > 0.0 {
                requests as f64 / duration_s
            } else {
                0.0
            },
            requests,
            ok: totals.ok,
            dropped: totals.dropped,
            connections_peak: if self.sched_tx.is_some() {
                shared.workers.load(Ordering::Acquire)
            } else {
                shared.plan.connections
            },
            late: totals.late,
            retries: totals.retries,
            stalled_windows: totals.stalled,
            errors,
            latency: Percentiles::of(&totals.hists.latency),
            service: Percentiles::of(&totals.hists.service),
            lag: Percentiles::of(&totals.hists.lag),
            windows: totals.windows,
            untrusted_windows: totals.untrusted,
            histograms: totals.hists.encode(),
        }
    }
}

impl Drop for LoadHandle {
    fn drop(&mut self) {
        // Without `finish`, nothing would stop the workers: cancel them (a no-op after
        // `finish`, where everything has already ended).
        self.shared.cancel.cancel();
        self.collector_stop.cancel();
    }
}
