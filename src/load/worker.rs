//! The hot path: one task per connection, in the open model (constant arrival rate, requests
//! taken in order from a shared ticket counter) or the closed model (next request when the
//! previous one answered), plus a heartbeat task that measures the runtime's own lateness.
//!
//! Three instants per request, all on the run's monotonic clock, in nanoseconds since start:
//! - `intended`: when the schedule says the request leaves (open model) or when the worker was
//!   free (closed model);
//! - `ready`: when a worker was free to take it;
//! - `send`: when it actually left.
//!
//! Latency is `done - intended` (what a user who arrived on schedule felt, coordinated omission
//! corrected); service time is `done - send` (what the target did); generator lag is
//! `send - max(intended, ready)`: lateness of the generator itself (timer granularity, a starved
//! CPU), which is not the target's doing. A request that waited for a free connection
//! (`ready > intended`) is the target's doing (or too few connections): it shows in latency and
//! is counted `late`; one that waited longer than the timeout is `dropped` unsent, as k6 drops
//! iterations, so that a long outage does not end in a burst of stale requests.
//!
//! Recording: each worker appends plain numbers to its own [`Slot`], behind a mutex that only
//! the once-a-second collector ever contends (an uncontended lock is one atomic swap, like any
//! lock-free handoff would be). Samples rather than per-worker histograms: a 3-digit histogram
//! up to one hour is ~180 KB, three per connection would cost ~35 MB at 64 connections for
//! nothing; the collector records the samples into one set of histograms per window.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{classify_status, connect, SendError, Sender};
use super::error::ErrorClass;
use super::schedule::Schedule;
use super::spec::Plan;

/// What one worker recorded since the collector last took it.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// (latency, service) in µs, for every request that got a response or waited into a
    /// timeout.
    pub timed: Vec<(u32, u32)>,
    /// Generator lag in µs, for every request sent.
    pub lag: Vec<u32>,
    /// Heartbeat lateness in µs (only the heartbeat task fills this).
    pub heartbeat: Vec<u32>,
    /// Successful responses (1xx-3xx).
    pub ok: u64,
    /// Failed requests by [`ErrorClass::index`].
    pub errors: [u64; 9],
    /// Requests not sent: they waited for a connection longer than the timeout.
    pub dropped: u64,
    /// Requests sent later than `max_lag` after their intended time because no connection
    /// was free.
    pub late: u64,
}

impl Tally {
    /// Empties it, keeping the vectors' capacity (so the steady state allocates nothing).
    pub fn clear(&mut self) {
        self.timed.clear();
        self.lag.clear();
        self.heartbeat.clear();
        self.ok = 0;
        self.errors = [0; 9];
        self.dropped = 0;
        self.late = 0;
    }
}

/// One worker's tally, swapped out by the collector every window.
#[derive(Debug, Default)]
pub(crate) struct Slot(pub Mutex<Tally>);

impl Slot {
    fn with<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        // A poisoned slot only means a worker panicked mid-record; the numbers are still
        // numbers, keep counting.
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut t)
    }
}

/// Everything the workers share, read-mostly.
pub(crate) struct Shared {
    pub plan: Plan,
    /// The run's zero on the monotonic clock.
    pub t0: Instant,
    /// Next request index (open model).
    pub ticket: AtomicU64,
    /// No request intended at or after this (ns since start) is sent; `u64::MAX` until
    /// `finish`.
    pub end_ns: AtomicU64,
    /// Graceful stop (`finish`): take no new request, let those in flight complete.
    pub stop: CancellationToken,
    /// `stop` as a plain flag for the per-request check: `CancellationToken::is_cancelled`
    /// takes the token tree's mutex, shared by every worker.
    pub stopping: AtomicBool,
    /// Hard stop: abandon requests in flight.
    pub cancel: CancellationToken,
    /// When the first window ends, after `t0`: one second, or less so that every later
    /// whole-second boundary falls on a whole second of the caller's clock (a gameday's run
    /// clock); `cuts` add the edges that are not whole seconds.
    pub first_window: Duration,
    /// Further window edges after `t0`, in order (a gameday's phase starts).
    pub cuts: Vec<Duration>,
}

impl Shared {
    pub fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn at(&self, ns: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.t0 + Duration::from_nanos(ns))
    }
}

/// Nanoseconds to microseconds, as u32: samples are kept compact (12 bytes a request, not 24)
/// and u32 µs reach 71 minutes, past the histograms' one-hour ceiling where values clamp anyway.
fn us(ns: u64) -> u32 {
    (ns / 1_000).min(u64::from(u32::MAX)) as u32
}

/// Per-worker state for sending: its connections (one per origin) and its random source.
struct Conns {
    senders: Vec<Option<Sender>>,
    rng: rand::rngs::StdRng,
    /// The worker's one request-timeout timer, armed lazily (see [`Conns::send_before`]).
    timer: Pin<Box<tokio::time::Sleep>>,
}

enum Outcome {
    /// A response; `Some(class)` for 4xx/5xx.
    Response(Option<ErrorClass>),
    /// Failed after waiting (timeouts): the wait is recorded in latency as a lower bound of
    /// what the user felt.
    WaitedFailure(ErrorClass),
    /// Failed fast (refused, reset, DNS, TLS): counted only, so it cannot flatter latency.
    FastFailure(ErrorClass),
}

impl Conns {
    fn new(plan: &Plan) -> Conns {
        Conns {
            senders: plan.origins.iter().map(|_| None).collect(),
            rng: rand::rngs::StdRng::from_entropy(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Runs `fut` until `deadline`; `None` on timeout. Arming a timer per request (as
    /// `tokio::time::timeout` does) inserts into and removes from the timer wheel every time;
    /// instead the worker keeps one timer that only needs to fire no later than the deadline.
    /// Deadlines only grow (they are send time + timeout), so a timer set for an earlier
    /// request fires early at worst: then it is re-armed for the real deadline and the wait
    /// goes on. It is re-armed about once per timeout period, not once per request.
    async fn send_before<F: std::future::Future>(
        timer: &mut Pin<Box<tokio::time::Sleep>>,
        deadline: tokio::time::Instant,
        fut: F,
    ) -> Option<F::Output> {
        if timer.deadline() > deadline || timer.is_elapsed() {
            timer.as_mut().reset(deadline);
        }
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                r = &mut fut => return Some(r),
                _ = timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return None;
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }

    fn pick(&mut self, plan: &Plan) -> usize {
        if plan.endpoints.len() == 1 {
            return 0;
        }
        let total = *plan
            .cumulative_weights
            .last()
            .expect("at least one endpoint");
        let x = self.rng.gen_range(0..total);
        plan.cumulative_weights.partition_point(|c| *c <= x)
    }

    /// One request: connect if needed, send, read the body, all under the timeouts. A reused
    /// connection that the peer closed while idle is reopened and the request sent again,
    /// once, uncounted (as browsers do): that race is not the target failing.
    async fn request(&mut self, shared: &Shared, send_ns: u64) -> Outcome {
        let plan = &shared.plan;
        let ep = &plan.endpoints[self.pick(plan)];
        let slot = &mut self.senders[ep.origin];
        let deadline = shared.at(send_ns) + plan.timeout;
        for _attempt in 0..2 {
            if slot.as_ref().is_some_and(Sender::is_closed) {
                *slot = None;
            }
            if slot.is_none() {
                match connect(plan, &plan.origins[ep.origin]).await {
                    Ok(s) => *slot = Some(s),
                    Err(ErrorClass::ConnectTimeout) => {
                        return Outcome::WaitedFailure(ErrorClass::ConnectTimeout)
                    }
                    Err(c) => return Outcome::FastFailure(c),
                }
            }
            let sender = slot.as_mut().expect("connected above");
            match Self::send_before(&mut self.timer, deadline, sender.send(ep)).await {
                Some(Ok(status)) => return Outcome::Response(classify_status(status)),
                Some(Err(SendError::Stale)) => *slot = None,
                Some(Err(SendError::Failed(class))) => {
                    *slot = None;
                    return match class {
                        ErrorClass::RequestTimeout => Outcome::WaitedFailure(class),
                        c => Outcome::FastFailure(c),
                    };
                }
                None => {
                    // The connection may still deliver the late response: never reuse it.
                    *slot = None;
                    return Outcome::WaitedFailure(ErrorClass::RequestTimeout);
                }
            }
        }
        // Stale twice in a row: the peer closes every connection before answering.
        Outcome::FastFailure(ErrorClass::Reset)
    }
}

fn record(
    slot: &Slot,
    intended: u64,
    send: u64,
    lag: u64,
    late: bool,
    done: u64,
    outcome: Outcome,
) {
    slot.with(|t| {
        t.lag.push(us(lag));
        if late {
            t.late += 1;
        }
        match outcome {
            Outcome::Response(None) => {
                t.ok += 1;
                t.timed.push((us(done - intended), us(done - send)));
            }
            Outcome::Response(Some(c)) => {
                t.errors[c.index()] += 1;
                t.timed.push((us(done - intended), us(done - send)));
            }
            Outcome::WaitedFailure(c) => {
                t.errors[c.index()] += 1;
                t.timed.push((us(done - intended), us(done - send)));
            }
            Outcome::FastFailure(c) => t.errors[c.index()] += 1,
        }
    });
}

/// Open model: take the next request index, wait for its intended time, send it.
pub(crate) async fn open_worker(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    mut sched_rx: watch::Receiver<Arc<Schedule>>,
    sleeper: Arc<tokio::sync::Semaphore>,
) {
    let mut conns = Conns::new(&shared.plan);
    let mut sched = sched_rx.borrow_and_update().clone();
    let timeout_ns = shared.plan.timeout.as_nanos() as u64;
    let max_lag_ns = shared.plan.max_lag.as_nanos() as u64;
    // Registered once per worker, not once per request: each registration takes the
    // token's internal lock, which every worker shares.
    let cancelled = shared.cancel.cancelled();
    let stopped = shared.stop.cancelled();
    tokio::pin!(cancelled, stopped);
    'run: loop {
        // Only one idle worker per thread holds a future request and sleeps until it is due
        // (the `sleeper` permit); the others wait for the permit. Were every idle worker to
        // reserve its next request in advance, a thread the OS deschedules would hold up to
        // its share of the connections' requests while the other threads idle; this way it
        // holds one, and the other threads take the next ones in order.
        let permit = tokio::select! {
            p = sleeper.acquire() => match p {
                Ok(p) => p,
                Err(_) => break 'run,
            },
            _ = &mut cancelled => break 'run,
        };
        let i = shared.ticket.fetch_add(1, Ordering::Relaxed);
        let ready = shared.now_ns();
        let intended = loop {
            if sched_rx.has_changed().unwrap_or(false) {
                sched = sched_rx.borrow_and_update().clone();
            }
            let end = shared.end_ns.load(Ordering::Acquire);
            let target = sched.time_of(i).map(|s| (s * 1e9) as u64);
            match target {
                Some(t) if t >= end => break 'run,
                None if end != u64::MAX => break 'run,
                Some(t) if t <= shared.now_ns() => break t,
                _ => {}
            }
            let wake = target.unwrap_or(u64::MAX).min(end);
            let sleep = async {
                if wake == u64::MAX {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep_until(shared.at(wake)).await
                }
            };
            tokio::select! {
                _ = sleep => {}
                r = sched_rx.changed() => match r {
                    // `changed` marks the new schedule seen: take it now, or `has_changed`
                    // above would never report it.
                    Ok(()) => sched = sched_rx.borrow_and_update().clone(),
                    Err(_) => break 'run,
                },
                _ = &mut stopped, if !shared.stopping.load(Ordering::Relaxed) => {}
                _ = &mut cancelled => break 'run,
            }
        };
        drop(permit);
        let send = shared.now_ns();
        if send.saturating_sub(intended) > timeout_ns && ready > intended {
            // No connection was free for it within the timeout: not sent (k6's dropped
            // iteration), counted, so a long stall does not end in a burst of stale requests.
            slot.with(|t| t.dropped += 1);
            continue;
        }
        let lag = send - intended.max(ready).min(send);
        let late = ready > intended + max_lag_ns;
        let outcome = tokio::select! {
            o = conns.request(&shared, send) => o,
            _ = &mut cancelled => break 'run,
        };
        record(&slot, intended, send, lag, late, shared.now_ns(), outcome);
    }
}

/// Closed model: send the next request as soon as the previous one answered.
pub(crate) async fn closed_worker(shared: Arc<Shared>, slot: Arc<Slot>) {
    let mut conns = Conns::new(&shared.plan);
    let cancelled = shared.cancel.cancelled();
    tokio::pin!(cancelled);
    while !shared.stopping.load(Ordering::Relaxed) {
        let send = shared.now_ns();
        if send >= shared.end_ns.load(Ordering::Acquire) {
            break;
        }
        let outcome = tokio::select! {
            o = conns.request(&shared, send) => o,
            _ = &mut cancelled => break,
        };
        record(&slot, send, send, 0, false, shared.now_ns(), outcome);
    }
}

/// How often the heartbeat wakes. Often enough for ~200 samples a window, rare enough to cost
/// nothing measurable.
const HEARTBEAT: Duration = Duration::from_millis(5);

/// Sleeps in short steps and records how late each wake-up was. Workers in a backlog never
/// sleep, so their lag alone cannot see a generator starved of CPU; the heartbeat can.
pub(crate) async fn heartbeat(shared: Arc<Shared>, slot: Arc<Slot>) {
    let step = HEARTBEAT.as_nanos() as u64;
    let mut next = shared.now_ns() + step;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(shared.at(next)) => {}
            _ = shared.stop.cancelled() => return,
            _ = shared.cancel.cancelled() => return,
        }
        let now = shared.now_ns();
        slot.with(|t| t.heartbeat.push(us(now.saturating_sub(next))));
        next = now + step;
    }
}
