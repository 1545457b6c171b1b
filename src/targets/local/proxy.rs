//! Gameday's own L4 (TCP) proxy: the stable *service address* of every fleet service, and
//! the place where `network` faults happen.
//!
//! Like a Kubernetes Service, a [`Proxy`] listens on one address and spreads TCP connections
//! over the service's healthy replicas (a live list the fleet supervisor keeps in a
//! [`watch`] channel). Because every link between fleet services, and the load's entry point,
//! goes through one of these proxies, a fault set on a proxy hits "the link into that
//! service", toxiproxy-style: latency with jitter and correlation, connection loss, reset,
//! blackhole, bandwidth limit and slow close, per direction, on a percentage of connections.
//!
//! Hand-written rather than embedding toxiproxy (a Go binary, not a crate): the proxy must
//! live inside the runner so that its faults die with it, and its no-fault path must stay as
//! cheap as `tokio::io::copy_bidirectional`. The per-chunk cost of the fault machinery when
//! nothing is active is one atomic load (see [`Shared::generation`]).
//!
//! Faults apply to connections that already exist as well as new ones (a pooled keep-alive
//! connection from the demo frontend must feel the fault too): each direction of each
//! connection checks, per chunk of data, whether the fault set changed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Size of the per-direction copy buffer: the same order as `copy_bidirectional` (8 KiB),
/// doubled so bulk transfers need half the syscalls.
const BUF_SIZE: usize = 16 * 1024;

/// How long the proxy waits for a replica to accept a connection before trying the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors from the proxy, carrying the address they are about.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The service address could not be bound (taken, or not a local address).
    #[error("proxy cannot listen on {addr}: {source} (is another process using that port?)")]
    Bind {
        /// The address the proxy tried to listen on.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Which way the data flows on a link, seen from the client of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client to service (requests).
    Upstream,
    /// Service to client (responses).
    Downstream,
}

/// The toxics that act on one direction of a link. All default to "nothing".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Toxics {
    /// Delay added to every chunk of data.
    pub latency: Duration,
    /// Random spread around `latency` (uniform in `[-jitter, +jitter]`).
    pub jitter: Duration,
    /// 0..=1: how much each chunk's jitter follows the previous one's (netem's correlation),
    /// so delays drift instead of flapping.
    pub correlation: f64,
    /// 0..=100: chance, per chunk, that the connection is dropped (closed both ways without
    /// forwarding the chunk): the client sees its connection lost.
    pub loss_percent: f64,
    /// The connection is reset (TCP RST to both ends) at its next chunk of data.
    pub reset: bool,
    /// Data is accepted and silently discarded: the peer waits for an answer that never comes.
    pub blackhole: bool,
    /// Throughput cap in bytes per second, if any.
    pub bandwidth_bytes_per_sec: Option<u64>,
    /// When the sender closes its side, the close is passed on only after this delay.
    pub slow_close: Duration,
}

impl Toxics {
    /// True when no toxic is set: the direction forwards data untouched.
    pub fn is_empty(&self) -> bool {
        *self == Toxics::default()
    }
}

/// One fault's effect on one proxy: toxics per direction, on a share of the connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkFaults {
    /// Toxics on client-to-service data.
    pub upstream: Toxics,
    /// Toxics on service-to-client data.
    pub downstream: Toxics,
    /// 0..=100: the share of connections affected. Each connection draws one number when it is
    /// accepted and keeps it, so raising `percent` adds connections, never reshuffles them.
    pub percent: f64,
}

impl LinkFaults {
    fn toxics(&self, dir: Direction) -> &Toxics {
        match dir {
            Direction::Upstream => &self.upstream,
            Direction::Downstream => &self.downstream,
        }
    }
}

/// Counters a proxy keeps, for tests and for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Connections accepted on the service address.
    pub accepted: u64,
    /// Connections closed because no replica was healthy or reachable.
    pub no_backend: u64,
    /// Connections dropped by the `loss` toxic.
    pub lost: u64,
    /// Connections reset by the `reset` toxic.
    pub reset: u64,
    /// Chunks discarded by the `blackhole` toxic.
    pub blackholed_chunks: u64,
}

/// State shared by the accept loop, every connection and the handle.
struct Shared {
    /// Active faults by fault id (several faults may hit one link; each is cleared alone).
    faults: RwLock<Arc<BTreeMap<String, LinkFaults>>>,
    /// Bumped on every change of `faults`. Connections compare it with the generation they
    /// cached, which keeps the lock off the per-chunk path.
    generation: AtomicU64,
    accepted: AtomicU64,
    no_backend: AtomicU64,
    lost: AtomicU64,
    reset: AtomicU64,
    blackholed: AtomicU64,
    next_backend: AtomicU64,
}

/// The proxy component. See the module documentation.
pub struct Proxy;

impl Proxy {
    /// Listen on `listen` and forward each accepted connection to one of `backends`
    /// (round-robin over the current list) until `cancel` fires.
    ///
    /// `listen` may use port 0; [`ProxyHandle::local_addr`] tells the port picked.
    pub async fn start(
        listen: SocketAddr,
        backends: watch::Receiver<Vec<SocketAddr>>,
        cancel: CancellationToken,
    ) -> Result<ProxyHandle, ProxyError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            faults: RwLock::new(Arc::new(BTreeMap::new())),
            generation: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            no_backend: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            reset: AtomicU64::new(0),
            blackholed: AtomicU64::new(0),
            next_backend: AtomicU64::new(0),
        });
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            backends,
            shared.clone(),
            cancel.clone(),
            tracker.clone(),
        ));
        tracing::debug!(%local_addr, "proxy listening");
        Ok(ProxyHandle {
            local_addr,
            shared,
            cancel,
            tracker,
        })
    }
}

/// Controls one running proxy. Cheap to clone; all clones act on the same proxy.
#[derive(Clone)]
pub struct ProxyHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The address the proxy listens on (the service address).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Activate (or replace) the faults of fault `id` on this link. Takes effect at the next
    /// chunk of data of every connection, existing ones included.
    pub fn set_faults(&self, id: &str, faults: LinkFaults) {
        self.update(|map| {
            map.insert(id.to_string(), faults);
        });
    }

    /// Remove the faults of fault `id`. Idempotent: clearing an unknown id does nothing.
    pub fn clear(&self, id: &str) -> bool {
        let mut removed = false;
        self.update(|map| removed = map.remove(id).is_some());
        removed
    }

    /// Remove every fault on this link.
    pub fn clear_all(&self) {
        self.update(|map| map.clear());
    }

    /// The faults active now, by fault id.
    pub fn faults(&self) -> BTreeMap<String, LinkFaults> {
        (**read_lock(&self.shared.faults)).clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            no_backend: s.no_backend.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
            reset: s.reset.load(Ordering::Relaxed),
            blackholed_chunks: s.blackholed.load(Ordering::Relaxed),
        }
    }

    /// Stop accepting, close every proxied connection, and wait for the tasks to end.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn update(&self, f: impl FnOnce(&mut BTreeMap<String, LinkFaults>)) {
        let mut guard = self
            .shared
            .faults
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut map = (**guard).clone();
        f(&mut map);
        *guard = Arc::new(map);
        self.shared.generation.fetch_add(1, Ordering::Release);
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    backends: watch::Receiver<Vec<SocketAddr>>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(error) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(%error, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let candidates = backends.borrow().clone();
        tracker.spawn(handle_connection(
            client,
            candidates,
            shared.clone(),
            cancel.clone(),
        ));
    }
}

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The direction reached end of stream and passed the close on.
    Closed,
    /// The `loss` toxic dropped the connection.
    Lost,
    /// The `reset` toxic reset the connection.
    Reset,
    /// An I/O error, or the proxy is shutting down.
    Aborted,
}

async fn connect_backend(candidates: &[SocketAddr], shared: &Shared) -> Option<TcpStream> {
    if candidates.is_empty() {
        return None;
    }
    let start = shared.next_backend.fetch_add(1, Ordering::Relaxed) as usize;
    for i in 0..candidates.len() {
        let addr = candidates[(start + i) % candidates.len()];
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(error)) => tracing::debug!(%addr, %error, "replica refused a connection"),
            Err(_) => tracing::debug!(%addr, "replica did not accept within the timeout"),
        }
    }
    None
}

async fn handle_connection(
    mut client: TcpStream,
    candidates: Vec<SocketAddr>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let Some(mut backend) = connect_backend(&candidates, &shared).await else {
        shared.no_backend.fetch_add(1, Ordering::Relaxed);
        // Like a Service with no ready endpoint: the client sees a reset, not a hang.
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    // One draw per connection decides which faults (by their `percent`) it feels.
    let roll: f64 = rand::thread_rng().gen_range(0.0..100.0);
    let end = {
        let (mut cr, mut cw) = client.split();
        let (mut br, mut bw) = backend.split();
        let up = pump(
            &mut cr,
            &mut bw,
            Direction::Upstream,
            roll,
            &shared,
            &cancel,
        );
        let down = pump(
            &mut br,
            &mut cw,
            Direction::Downstream,
            roll,
            &shared,
            &cancel,
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let end = tokio::select! {
                e = &mut up, if !up_done => { up_done = true; e }
                e = &mut down, if !down_done => { down_done = true; e }
            };
            if end != End::Closed || (up_done && down_done) {
                break end;
            }
        }
    };
    match end {
        End::Reset => {
            shared.reset.fetch_add(1, Ordering::Relaxed);
            // SO_LINGER 0 makes close() send RST instead of FIN.
            let _ = client.set_zero_linger();
            let _ = backend.set_zero_linger();
        }
        End::Lost => {
            shared.lost.fetch_add(1, Ordering::Relaxed);
        }
        End::Closed | End::Aborted => {}
    }
}

/// The per-direction view of the fault set, cached until the generation changes.
struct DirState {
    generation: u64,
    /// The toxics of every active fault that hits this connection in this direction.
    active: Vec<Toxics>,
    /// Last jitter offset in nanoseconds (signed), for correlation.
    last_jitter_ns: f64,
}

impl DirState {
    fn refresh(&mut self, shared: &Shared, dir: Direction, roll: f64) {
        let generation = shared.generation.load(Ordering::Acquire);
        if generation == self.generation {
            return;
        }
        let faults = read_lock(&shared.faults).clone();
        self.active = faults
            .values()
            .filter(|f| roll < f.percent)
            .map(|f| f.toxics(dir).clone())
            .filter(|t| !t.is_empty())
            .collect();
        self.generation = generation;
    }
}

/// Copy one direction until end of stream, applying the toxics active at each chunk.
async fn pump<R, W>(
    src: &mut R,
    dst: &mut W,
    dir: Direction,
    roll: f64,
    shared: &Shared,
    cancel: &CancellationToken,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    let mut state = DirState {
        generation: 0,
        active: Vec::new(),
        last_jitter_ns: 0.0,
    };
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return End::Aborted,
            r = src.read(&mut buf) => match r {
                Ok(n) => n,
                Err(_) => return End::Aborted,
            },
        };
        state.refresh(shared, dir, roll);
        if n == 0 {
            let slow_close = state.active.iter().map(|t| t.slow_close).max();
            if let Some(delay) = slow_close.filter(|d| !d.is_zero()) {
                tokio::select! {
                    _ = cancel.cancelled() => return End::Aborted,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            let _ = dst.shutdown().await;
            return End::Closed;
        }
        if state.active.is_empty() {
            // The fast path: no fault touches this connection in this direction.
            if dst.write_all(&buf[..n]).await.is_err() {
                return End::Aborted;
            }
            continue;
        }
        match apply_toxics(&mut state, shared, cancel).await {
            Verdict::Forward { bytes_per_sec } => {
                if write_paced(dst, &buf[..n], bytes_per_sec, cancel)
                    .await
                    .is_err()
                {
                    return End::Aborted;
                }
            }
            Verdict::Discard => {}
            Verdict::End(end) => return end,
        }
    }
}

enum Verdict {
    Forward { bytes_per_sec: Option<u64> },
    Discard,
    End(End),
}

async fn apply_toxics(
    state: &mut DirState,
    shared: &Shared,
    cancel: &CancellationToken,
) -> Verdict {
    // Decide synchronously (the thread-local RNG must not live across an await).
    let delay = {
        let mut rng = rand::thread_rng();
        if state.active.iter().any(|t| t.reset) {
            return Verdict::End(End::Reset);
        }
        let loss = state
            .active
            .iter()
            .map(|t| t.loss_percent)
            .fold(0.0, f64::max);
        if loss > 0.0 && rng.gen_range(0.0..100.0) < loss {
            return Verdict::End(End::Lost);
        }
        if state.active.iter().any(|t| t.blackhole) {
            shared.blackholed.fetch_add(1, Ordering::Relaxed);
            return Verdict::Discard;
        }
        let mut delay_ns = 0.0f64;
        let mut jitter_ns = 0.0f64;
        let mut correlation = 0.0f64;
        for t in &state.active {
            delay_ns += t.latency.as_nanos() as f64;
            jitter_ns += t.jitter.as_nanos() as f64;
            correlation = correlation.max(t.correlation.clamp(0.0, 1.0));
        }
        if jitter_ns > 0.0 {
            let fresh = rng.gen_range(-jitter_ns..=jitter_ns);
            let offset = correlation * state.last_jitter_ns + (1.0 - correlation) * fresh;
            state.last_jitter_ns = offset;
            delay_ns += offset;
        }
        Duration::from_nanos(delay_ns.max(0.0) as u64)
    };
    if !delay.is_zero() {
        tokio::select! {
            _ = cancel.cancelled() => return Verdict::End(End::Aborted),
            _ = tokio::time::sleep(delay) => {}
        }
    }
    let bytes_per_sec = state
        .active
        .iter()
        .filter_map(|t| t.bandwidth_bytes_per_sec)
        .min();
    Verdict::Forward { bytes_per_sec }
}

/// Write `data`, pacing it to `bytes_per_sec` in slices of a tenth of a second's worth, so
/// that a limited link trickles rather than bursts.
async fn write_paced<W: AsyncWrite + Unpin>(
    dst: &mut W,
    data: &[u8],
    bytes_per_sec: Option<u64>,
    cancel: &CancellationToken,
) -> std::io::Result<()> {
    let Some(rate) = bytes_per_sec.filter(|r| *r > 0) else {
        return dst.write_all(data).await;
    };
    let slice = ((rate / 10).max(1) as usize).min(data.len());
    for part in data.chunks(slice) {
        dst.write_all(part).await?;
        let pause = Duration::from_secs_f64(part.len() as f64 / rate as f64);
        tokio::select! {
            _ = cancel.cancelled() => return Err(std::io::ErrorKind::Interrupted.into()),
            _ = tokio::time::sleep(pause) => {}
        }
    }
    Ok(())
}

/// The proxies of a local fleet by service name: what `network` faults act on, filled by the
/// fleet when it starts a service and emptied when the fleet stops.
#[derive(Debug, Clone, Default)]
pub struct ProxyRegistry {
    inner: Arc<RwLock<BTreeMap<String, ProxyHandle>>>,
}

impl ProxyRegistry {
    /// Register the proxy serving `service` (replacing any earlier one).
    pub fn insert(&self, service: &str, handle: ProxyHandle) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_string(), handle);
    }

    /// Forget the proxy of `service`, returning it.
    pub fn remove(&self, service: &str) -> Option<ProxyHandle> {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(service)
    }

    /// The proxy serving `service`, if the fleet runs it in this process.
    pub fn get(&self, service: &str) -> Option<ProxyHandle> {
        read_lock(&self.inner).get(service).cloned()
    }

    /// The services that have a proxy.
    pub fn services(&self) -> Vec<String> {
        read_lock(&self.inner).keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toxics_are_empty_and_any_field_makes_them_active() {
        assert!(Toxics::default().is_empty());
        let t = Toxics {
            blackhole: true,
            ..Toxics::default()
        };
        assert!(!t.is_empty());
    }

    #[test]
    fn a_connection_feels_only_the_faults_its_roll_falls_under() {
        let shared = Shared {
            faults: RwLock::new(Arc::new(BTreeMap::new())),
            generation: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            no_backend: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            reset: AtomicU64::new(0),
            blackholed: AtomicU64::new(0),
            next_backend: AtomicU64::new(0),
        };
        let mut map = BTreeMap::new();
        let slow = Toxics {
            latency: Duration::from_millis(5),
            ..Toxics::default()
        };
        map.insert(
            "half".to_string(),
            LinkFaults {
                upstream: slow.clone(),
                downstream: Toxics::default(),
                percent: 50.0,
            },
        );
        *shared.faults.write().unwrap() = Arc::new(map);
        shared.generation.store(1, Ordering::Release);
        let mut state = DirState {
            generation: 0,
            active: Vec::new(),
            last_jitter_ns: 0.0,
        };
        state.refresh(&shared, Direction::Upstream, 10.0);
        assert_eq!(state.active, vec![slow]);
        state.generation = 0;
        state.refresh(&shared, Direction::Upstream, 90.0);
        assert!(state.active.is_empty());
        state.generation = 0;
        state.refresh(&shared, Direction::Downstream, 10.0);
        assert!(state.active.is_empty(), "downstream has no toxics");
    }
}
