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
//! Attribution: every outcome is recorded with its `intended` time, and the collector puts it in
//! the window of that time, not of its completion (see [`super::window`]): a request meant for
//! second 12 that timed out at second 22 is a failure of second 12, when the user asked. The
//! deadline of a request is `intended + timeout` (the user's patience counts from when they
//! asked), so every outcome of a window is known by the window's end plus the timeout.
//!
//! Recording: each worker appends one [`Sample`] per request to its own [`Slot`], behind a
//! mutex that only the collector ever contends (an uncontended lock is one atomic swap, like
//! any lock-free handoff would be); the request it is busy with is published in the slot's
//! `in_flight`, so the live view can count a hang while it lasts. Samples rather than
//! per-worker histograms: a 3-digit histogram up to one hour is ~180 KB, three per connection
//! would cost ~35 MB at 64 connections for nothing; the collector records the samples into one
//! set of histograms per window.

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

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Answered 1xx-3xx.
    Ok,
    /// Failed, in its class.
    Error(ErrorClass),
    /// The generator could not send it in time: no connection was free for it before its
    /// deadline, or it waited for one (the pool at its cap) and the deadline came first.
    Dropped,
}

/// One request's outcome, as a worker records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Intended send time, ns since the load's start: the window it belongs to.
    pub intended_ns: u64,
    /// Latency from the intended time and service time from the send, µs; `None` for outcomes
    /// that carry no latency (fast failures, drops), so they cannot flatter the percentiles.
    pub timed: Option<(u32, u32)>,
    /// Generator lag, µs (sent requests only).
    pub lag_us: Option<u32>,
    pub kind: Kind,
    /// Sent later than `max_lag` after its intended time because every connection was busy.
    pub late: bool,
    /// Times it was sent again on a fresh connection after a reused one failed under it.
    pub retries: u8,
}

/// What one worker recorded since the collector last took it.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub samples: Vec<Sample>,
    /// (wake-up time in ns since start, lateness in µs), from the heartbeat task only.
    pub heartbeat: Vec<(u64, u32)>,
}

impl Tally {
    /// Empties it, keeping the vectors' capacity (so the steady state allocates nothing).
    pub fn clear(&mut self) {
        self.samples.clear();
        self.heartbeat.clear();
    }
}

/// One worker's tally, swapped out by the collector, and the request it is busy with.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub tally: Mutex<Tally>,
    /// Intended time (ns since start) + 1 of the request this worker has sent and not yet
    /// recorded; 0 when none. Set before sending, cleared under the tally's lock together with
    /// the sample, so the collector never counts a request both as pending and as done.
    pub in_flight: AtomicU64,
    /// When the request in flight was sent (ns since start); meaningful while `in_flight` is
    /// set (the closed model's stall detection).
    pub sent_ns: AtomicU64,
}

impl Slot {
    fn with<R>(&self, f: impl FnOnce(&mut Tally) -> R) -> R {
        // A poisoned slot only means a worker panicked mid-record; the numbers are still
        // numbers, keep counting.
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut t)
    }

    fn begin(&self, intended: u64, send: u64) {
        self.sent_ns.store(send, Ordering::Relaxed);
        self.in_flight.store(intended + 1, Ordering::Release);
    }

    fn push(&self, sample: Sample) {
        self.with(|t| {
            t.samples.push(sample);
            self.in_flight.store(0, Ordering::Release);
        });
    }
}

/// Everything the workers share, read-mostly.
pub(crate) struct Shared {
    pub plan: Plan,
    /// The run's zero on the monotonic clock.
    pub t0: Instant,
    /// Next request index (open model). The collector also advances it past requests whose
    /// deadline has gone by unsent (they are dropped at their intended second).
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
    /// Window edges after `t0` (see [`super::edges::Edges`]).
    pub edges: super::edges::Edges,
    /// Every worker's slot (and the heartbeat's), read by the collector at each tick; the
    /// open model adds one per connection it opens beyond the first `connections`.
    pub slots: Mutex<Vec<Arc<Slot>>>,
    /// Open-model workers running (each one connection per origin).
    pub workers: std::sync::atomic::AtomicUsize,
    /// Open-model workers not busy with a request.
    pub idle: std::sync::atomic::AtomicUsize,
}

/// One thread's share of the workers: where new ones are spawned, and its one permit to
/// sleep on a future request.
pub(crate) struct Pool {
    pub tracker: tokio_util::task::TaskTracker,
    pub sleeper: tokio::sync::Semaphore,
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
    /// When each connection last finished a request (ns since start), to know it sat idle.
    idle_since: Vec<u64>,
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

/// A connection idle for longer than this is checked for a close by the peer before it is
/// reused (one non-blocking read): servers close idle keep-alive connections, and a request
/// written into a connection already closed would have to be sent again. Busy connections
/// skip the check, which keeps the hot path at one write and one read per request.
const IDLE_CHECK_NS: u64 = 1_000_000;

impl Conns {
    fn new(plan: &Plan) -> Conns {
        Conns {
            senders: plan.origins.iter().map(|_| None).collect(),
            idle_since: plan.origins.iter().map(|_| 0).collect(),
            rng: rand::rngs::StdRng::from_entropy(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Runs `fut` until `deadline`; `None` on timeout. Arming a timer per request (as
    /// `tokio::time::timeout` does) inserts into and removes from the timer wheel every time;
    /// instead the worker keeps one timer that only needs to fire no later than the deadline.
    /// Deadlines only grow (they are intended time + timeout), so a timer set for an earlier
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

    /// One request, due by `deadline` (its intended time + the timeout): connect if needed,
    /// send, read the body. Returns the outcome and how many times it was sent again.
    ///
    /// Resends: a reused connection seen closed before the request is tried on it is simply
    /// replaced (nothing was attempted). One that refuses the request's first byte (the peer
    /// closed it while idle) is tried once more on a fresh connection, only for an idempotent
    /// method (RFC 9110 §9.2.2), and every such retry is counted (`retries`), never hidden.
    /// Once any byte of the request was written it may have reached the server, and a failure
    /// after that is what users felt (`reset` usually): it is never resent, whatever the
    /// method.
    async fn request(&mut self, shared: &Shared, deadline_ns: u64, now_ns: u64) -> (Outcome, u8) {
        let plan = &shared.plan;
        let ep = &plan.endpoints[self.pick(plan)];
        let origin = ep.origin;
        let deadline = shared.at(deadline_ns);
        let mut retries = 0u8;
        loop {
            let slot = &mut self.senders[origin];
            if slot.as_ref().is_some_and(Sender::is_closed)
                || (now_ns.saturating_sub(self.idle_since[origin]) > IDLE_CHECK_NS
                    && slot.as_mut().is_some_and(Sender::peer_closed))
            {
                *slot = None;
            }
            if slot.is_none() {
                let connect_by = deadline.min(tokio::time::Instant::now() + plan.connect_timeout);
                match tokio::time::timeout_at(connect_by, connect(plan, &plan.origins[origin]))
                    .await
                {
                    Ok(Ok(s)) => *slot = Some(s),
                    Ok(Err(ErrorClass::ConnectTimeout)) | Err(_) => {
                        return (Outcome::WaitedFailure(ErrorClass::ConnectTimeout), retries)
                    }
                    Ok(Err(c)) => return (Outcome::FastFailure(c), retries),
                }
            }
            let sender = slot.as_mut().expect("connected above");
            let outcome = match Self::send_before(&mut self.timer, deadline, sender.send(ep)).await
            {
                Some(Ok(status)) => Outcome::Response(classify_status(status)),
                Some(Err(SendError::Stale)) => {
                    *slot = None;
                    if retries == 0 && ep.idempotent {
                        retries += 1;
                        continue;
                    }
                    // Refused twice in a row, or a method that must not be sent twice.
                    Outcome::FastFailure(ErrorClass::Reset)
                }
                Some(Err(SendError::Failed(class))) => {
                    *slot = None;
                    match class {
                        ErrorClass::RequestTimeout => Outcome::WaitedFailure(class),
                        c => Outcome::FastFailure(c),
                    }
                }
                None => {
                    // The connection may still deliver the late response: never reuse it.
                    *slot = None;
                    Outcome::WaitedFailure(ErrorClass::RequestTimeout)
                }
            };
            self.idle_since[origin] = shared.now_ns();
            return (outcome, retries);
        }
    }
}

/// Records one sent request's outcome, in the window of its intended time.
fn record(
    slot: &Slot,
    intended: u64,
    send: u64,
    lag: Option<u64>,
    late: bool,
    done: u64,
    o: (Outcome, u8),
) {
    let (outcome, retries) = o;
    let timed = Some((
        us(done.saturating_sub(intended)),
        us(done.saturating_sub(send)),
    ));
    let (kind, timed) = match outcome {
        Outcome::Response(None) => (Kind::Ok, timed),
        Outcome::Response(Some(c)) | Outcome::WaitedFailure(c) => (Kind::Error(c), timed),
        Outcome::FastFailure(c) => (Kind::Error(c), None),
    };
    slot.push(Sample {
        intended_ns: intended,
        timed,
        lag_us: lag.map(us),
        kind,
        late,
        retries,
    });
}

/// Open model: take the next request index, wait for its intended time, send it.
///
/// The pool is elastic, as an open model's users are independent: when this worker takes a
/// request and no other worker is left idle, it starts one more (up to `max_connections`), so
/// the next arrival finds a connection of its own instead of queueing behind a hung one.
pub(crate) async fn open_worker(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    mut sched_rx: watch::Receiver<Arc<Schedule>>,
    pool: Arc<Pool>,
    free_since: u64,
) {
    shared.idle.fetch_add(1, Ordering::AcqRel);
    open_loop(&shared, &slot, &mut sched_rx, &pool, free_since).await;
    shared.idle.fetch_sub(1, Ordering::AcqRel);
}

/// Starts one more open-model worker on this thread, if the cap allows.
fn grow(shared: &Arc<Shared>, sched_rx: &watch::Receiver<Arc<Schedule>>, pool: &Arc<Pool>) {
    let max = shared.plan.max_connections;
    let grew = shared
        .workers
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok();
    if !grew {
        return;
    }
    let slot = Arc::new(Slot::default());
    shared
        .slots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(slot.clone());
    // Free from now: how long the runtime takes to first poll it is the generator's lag.
    pool.tracker.spawn(open_worker(
        shared.clone(),
        slot,
        sched_rx.clone(),
        pool.clone(),
        shared.now_ns(),
    ));
}

async fn open_loop(
    shared: &Arc<Shared>,
    slot: &Arc<Slot>,
    sched_rx: &mut watch::Receiver<Arc<Schedule>>,
    pool: &Arc<Pool>,
    free_since: u64,
) {
    let sleeper = &pool.sleeper;
    let mut conns = Conns::new(&shared.plan);
    let mut sched = sched_rx.borrow_and_update().clone();
    let timeout_ns = shared.plan.timeout.as_nanos() as u64;
    let max_lag_ns = shared.plan.max_lag.as_nanos() as u64;
    // Registered once per worker, not once per request: each registration takes the
    // token's internal lock, which every worker shares.
    let cancelled = shared.cancel.cancelled();
    let stopped = shared.stop.cancelled();
    tokio::pin!(cancelled, stopped);
    // When this worker last became free. Not the moment it gets the sleeper permit: a worker
    // waiting for the permit is free, and if the generator's thread is starved every request
    // taken after the stall would otherwise look sent on time (lag 0) and only "late", the
    // target's doing, when it is the generator's.
    let mut ready = free_since;
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
        let i = shared.ticket.fetch_add(1, Ordering::AcqRel);
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
        // Busy from here on; the last idle worker makes sure someone takes the next arrival.
        if shared.idle.fetch_sub(1, Ordering::AcqRel) == 1
            && !shared.stopping.load(Ordering::Relaxed)
        {
            grow(shared, sched_rx, pool);
        }
        let send = shared.now_ns();
        let deadline = intended + timeout_ns;
        if send >= deadline {
            // No connection was free for it before its deadline: not sent (k6's dropped
            // iteration), a failure of its intended second, so a long stall does not end in
            // a burst of stale requests either.
            slot.push(Sample {
                intended_ns: intended,
                timed: None,
                lag_us: None,
                kind: Kind::Dropped,
                late: ready > intended + max_lag_ns,
                retries: 0,
            });
            shared.idle.fetch_add(1, Ordering::AcqRel);
            ready = shared.now_ns();
            continue;
        }
        let lag = send - intended.max(ready).min(send);
        let late = ready > intended + max_lag_ns;
        slot.begin(intended, send);
        let outcome = tokio::select! {
            o = conns.request(shared, deadline, send) => o,
            _ = &mut cancelled => {
                shared.idle.fetch_add(1, Ordering::AcqRel);
                break 'run
            }
        };
        let done = shared.now_ns();
        if late
            && matches!(
                outcome.0,
                Outcome::WaitedFailure(ErrorClass::RequestTimeout)
            )
        {
            // It waited in the generator for a connection (every one busy, the pool at its
            // cap) and its deadline came before an answer: the generator used up its time, so
            // it is the generator's failure to send in time, not the target's timeout.
            slot.push(Sample {
                intended_ns: intended,
                timed: None,
                lag_us: Some(us(lag)),
                kind: Kind::Dropped,
                late,
                retries: outcome.1,
            });
        } else {
            record(slot, intended, send, Some(lag), late, done, outcome);
        }
        shared.idle.fetch_add(1, Ordering::AcqRel);
        ready = done;
    }
}

/// Closed model: send the next request as soon as the previous one answered. Its "intended"
/// time is when it was sent: there is no schedule to fall behind, which is why this model is
/// not coordinated-omission corrected.
pub(crate) async fn closed_worker(shared: Arc<Shared>, slot: Arc<Slot>) {
    let mut conns = Conns::new(&shared.plan);
    let timeout_ns = shared.plan.timeout.as_nanos() as u64;
    let cancelled = shared.cancel.cancelled();
    tokio::pin!(cancelled);
    while !shared.stopping.load(Ordering::Relaxed) {
        let send = shared.now_ns();
        if send >= shared.end_ns.load(Ordering::Acquire) {
            break;
        }
        slot.begin(send, send);
        let outcome = tokio::select! {
            o = conns.request(&shared, send + timeout_ns, send) => o,
            _ = &mut cancelled => break,
        };
        record(&slot, send, send, Some(0), false, shared.now_ns(), outcome);
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
        slot.with(|t| t.heartbeat.push((now, us(now.saturating_sub(next)))));
        next = now + step;
    }
}
