//! The supervised local fleet: each service's replicas as real processes on this machine.
//!
//! The supervisor does what a ReplicaSet and a kubelet would: start every replica with its own
//! port, probe readiness over HTTP, restart a replica that died with exponential backoff, and
//! stop everything (SIGTERM, then SIGKILL) on the way out. Each started process is written to
//! the ledger as a `process` record, so that `gameday recover` can stop a fleet whose runner
//! was killed; the record is written right after the spawn, since the pid does not exist
//! before, and the window between the two is a few microseconds of our own code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{LocalTarget, ServiceSpec};
use crate::ledger::Ledger;
use crate::targets::{Prepared, TargetError};

/// Adds environment variables to a replica at spawn: the sandbox's DNS server, the spot
/// metadata endpoint of the replica's instance. Arguments: service, replica index, instance.
pub type EnvHook = Arc<dyn Fn(&str, u32, u32) -> Vec<(String, String)> + Send + Sync>;

/// What the ledger keeps to stop a fleet process in another runner's life.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ProcessUndo {
    /// The process id.
    pub pid: u32,
    /// The process group (the replica and anything it started).
    pub pgid: u32,
    /// `/proc/<pid>/stat` start time, so a recycled pid is never signalled.
    pub start_time: Option<u64>,
}

/// One replica's live state.
#[derive(Debug, Clone, Default)]
pub struct ReplicaState {
    /// The running process, if any.
    pub pid: Option<u32>,
    /// Whether the readiness probe passes.
    pub ready: bool,
    /// How many times the supervisor restarted it.
    pub restarts: u32,
    /// The ledger record of the running process.
    ledger_id: Option<u64>,
}

/// One replica of a service.
#[derive(Debug)]
pub struct Replica {
    /// The service it belongs to.
    pub service: String,
    /// 0-based index within the service.
    pub index: u32,
    /// The spot "instance" it runs on (index / instance_size).
    pub instance: u32,
    /// Its own listen port on 127.0.0.1.
    pub port: u16,
    state: Mutex<ReplicaState>,
    /// Replica-level cancel: stops this replica's supervisor (an instance taken away).
    hold: Mutex<Option<Instant>>,
}

impl Replica {
    /// `service-index`, the name used in logs, the ledger and the report.
    pub fn name(&self) -> String {
        format!("{}-{}", self.service, self.index)
    }

    /// A snapshot of its state.
    pub fn state(&self) -> ReplicaState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Keep the replica down until `until` (an interrupted instance is gone for a while;
    /// the supervisor brings a replacement up after that).
    pub fn hold_until(&self, until: Instant) {
        *self.hold.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
    }
}

struct Service {
    spec: ServiceSpec,
    replicas: Vec<Arc<Replica>>,
    ready_tx: watch::Sender<Vec<SocketAddr>>,
}

/// The running fleet.
pub struct Fleet {
    services: Vec<Service>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// Reads the start time (clock ticks since boot) of a process, field 22 of
/// `/proc/<pid>/stat`: with the pid it identifies one process for good.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process named by a ledger record still runs (same pid, same start time) and is
/// not a zombie.
pub fn process_alive(u: &ProcessUndo) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", u.pid)) else {
        return false;
    };
    let zombie = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) == Some("Z");
    !zombie && (u.start_time.is_none() || process_start_time(u.pid) == u.start_time)
}

/// Whether a ledger record may be signalled at all. kill(2) gives pids 0 and 1 (and groups
/// 0 and 1, as `-pgid`) meanings no fleet process has: 0 is the caller's own group, -1 every
/// process it may signal (as root: the whole machine), 1 is init. A corrupt or hand-edited
/// ledger, or a spawn whose pid was unknown (`0`), must never reach them; nor may our own
/// process group.
pub fn signalable(u: &ProcessUndo) -> bool {
    // SAFETY: getpgrp(2) has no failure mode and touches no memory.
    let own_group = unsafe { libc::getpgrp() } as u32;
    u.pid > 1 && u.pgid > 1 && u.pgid != own_group && u.pid != std::process::id()
}

/// Sends `signal` to the process group of a ledger record, if it is still the same process.
/// Returns whether it was alive.
pub fn signal_process(u: &ProcessUndo, signal: i32) -> bool {
    if !signalable(u) || !process_alive(u) {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe { libc::kill(-(u.pgid as i32), signal) == 0 || libc::kill(u.pid as i32, signal) == 0 }
}

/// Stops a process from a ledger record: SIGTERM, then SIGKILL after `grace`. Idempotent:
/// a process that is gone (or whose pid was recycled) counts as stopped.
pub async fn stop_process(u: &ProcessUndo, grace: Duration) {
    if !signal_process(u, libc::SIGTERM) {
        return;
    }
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if !process_alive(u) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal_process(u, libc::SIGKILL);
}

/// A readiness probe: `GET path` over HTTP/1.0, ready on a 2xx status line. Written by hand
/// because it needs only the status code of a loopback server; no client crate does less.
async fn probe(port: u16, path: &str) -> bool {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 16];
        let mut n = 0;
        while n < 12 {
            let r = s.read(&mut buf[n..]).await.ok()?;
            if r == 0 {
                break;
            }
            n += r;
        }
        let head = std::str::from_utf8(&buf[..n]).ok()?;
        Some(head.starts_with("HTTP/1.") && head.get(9..10) == Some("2"))
    };
    tokio::time::timeout(Duration::from_secs(1), fut)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl Fleet {
    /// Starts every replica of every service and waits until all are ready (or
    /// `startup_timeout` passes: then everything started is stopped again and the error says
    /// which replicas never became ready).
    pub async fn start(
        config: &LocalTarget,
        log_dir: PathBuf,
        ledger: Option<Arc<Ledger>>,
        env_hook: Option<EnvHook>,
        cancel: CancellationToken,
    ) -> Result<Fleet, TargetError> {
        // Private to owner and group whatever the umask, like the run folder it lives in.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o750)
            .create(&log_dir)
            .map_err(|e| TargetError::Op {
                action: "create fleet log directory".into(),
                object: log_dir.display().to_string(),
                source: e.into(),
            })?;
        let tracker = TaskTracker::new();
        let mut services = Vec::new();
        for spec in &config.services {
            let (ready_tx, _) = watch::channel(Vec::new());
            let mut replicas = Vec::new();
            for index in 0..spec.replicas {
                let port = super::ports::free_loopback_port().map_err(|e| TargetError::Op {
                    action: "find a free port".into(),
                    object: format!("{}-{index}", spec.name),
                    source: e.into(),
                })?;
                replicas.push(Arc::new(Replica {
                    service: spec.name.clone(),
                    index,
                    instance: index / spec.instance_size.max(1),
                    port,
                    state: Mutex::new(ReplicaState::default()),
                    hold: Mutex::new(None),
                }));
            }
            services.push(Service {
                spec: spec.clone(),
                replicas,
                ready_tx,
            });
        }
        let fleet = Fleet {
            services,
            cancel,
            tracker,
        };
        for svc in &fleet.services {
            for r in &svc.replicas {
                let sup = Supervisor {
                    spec: svc.spec.clone(),
                    replica: r.clone(),
                    log_dir: log_dir.clone(),
                    ledger: ledger.clone(),
                    env_hook: env_hook.clone(),
                    cancel: fleet.cancel.clone(),
                    all: svc.replicas.clone(),
                    ready_tx: svc.ready_tx.clone(),
                };
                fleet.tracker.spawn(sup.run());
            }
        }
        let deadline = Instant::now() + config.startup_timeout.get();
        loop {
            let waiting: Vec<String> = fleet
                .replicas()
                .filter(|r| !r.state().ready)
                .map(|r| r.name())
                .collect();
            if waiting.is_empty() {
                return Ok(fleet);
            }
            if Instant::now() > deadline {
                fleet.stop().await;
                return Err(TargetError::Unreachable {
                    target: "local".into(),
                    reason: format!(
                        "replicas {} not ready after {}; see their logs in {}",
                        waiting.join(", "),
                        config.startup_timeout,
                        log_dir.display()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every replica of every service.
    pub fn replicas(&self) -> impl Iterator<Item = &Arc<Replica>> {
        self.services.iter().flat_map(|s| s.replicas.iter())
    }

    /// The replicas of one service, or `None` if there is no such service.
    pub fn service(&self, name: &str) -> Option<&[Arc<Replica>]> {
        self.services
            .iter()
            .find(|s| s.spec.name == name)
            .map(|s| s.replicas.as_slice())
    }

    /// The service's spec.
    pub fn spec(&self, name: &str) -> Option<&ServiceSpec> {
        self.services
            .iter()
            .find(|s| s.spec.name == name)
            .map(|s| &s.spec)
    }

    /// The ready replicas' addresses of a service, live: what a service proxy balances over.
    pub fn ready_addrs(&self, name: &str) -> Option<watch::Receiver<Vec<SocketAddr>>> {
        self.services
            .iter()
            .find(|s| s.spec.name == name)
            .map(|s| s.ready_tx.subscribe())
    }

    /// Restart counts by replica name, for the report.
    pub fn restarts(&self) -> BTreeMap<String, u32> {
        self.replicas()
            .map(|r| (r.name(), r.state().restarts))
            .collect()
    }

    /// Stops every replica (SIGTERM, then SIGKILL) and waits for the supervisors.
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

struct Supervisor {
    spec: ServiceSpec,
    replica: Arc<Replica>,
    log_dir: PathBuf,
    ledger: Option<Arc<Ledger>>,
    env_hook: Option<EnvHook>,
    cancel: CancellationToken,
    all: Vec<Arc<Replica>>,
    ready_tx: watch::Sender<Vec<SocketAddr>>,
}

impl Supervisor {
    fn set(&self, f: impl FnOnce(&mut ReplicaState)) {
        {
            let mut st = self.replica.state.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut st);
        }
        let ready: Vec<SocketAddr> = self
            .all
            .iter()
            .filter(|r| r.state().ready)
            .map(|r| r.addr())
            .collect();
        self.ready_tx.send_if_modified(|cur| {
            if *cur != ready {
                *cur = ready;
                true
            } else {
                false
            }
        });
    }

    fn command(&self) -> tokio::process::Command {
        let mut argv = self.spec.command.iter();
        let first = argv.next().map(String::as_str).unwrap_or("true");
        let program = if first == "gameday" {
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| first.into())
        } else {
            first.to_string()
        };
        let r = &self.replica;
        let mut cmd = tokio::process::Command::new(program);
        // `$PORT` in an argument is the replica's port, for programs that take it as a flag.
        let port = r.port.to_string();
        cmd.args(argv.map(|a| a.replace("${PORT}", &port).replace("$PORT", &port)));
        cmd.env("PORT", r.port.to_string())
            .env("GAMEDAY_SERVICE", &r.service)
            .env("GAMEDAY_REPLICA", r.index.to_string())
            .env("GAMEDAY_INSTANCE", r.instance.to_string());
        // Marks the replica with its run's ledger: its pid is only known after the spawn, so a
        // runner killed between spawn and record leaves a replica the ledger does not name;
        // `gameday recover` finds such strays by this mark.
        if let Some(path) = self
            .ledger
            .as_ref()
            .and_then(|l| std::fs::canonicalize(l.path()).ok())
        {
            cmd.env(crate::ledger::LEDGER_ENV, path);
        }
        for (k, v) in &self.spec.env {
            cmd.env(k, v);
        }
        if let Some(hook) = &self.env_hook {
            for (k, v) in hook(&r.service, r.index, r.instance) {
                cmd.env(k, v);
            }
        }
        // Its own process group, so that stopping a replica stops what it started too.
        cmd.process_group(0).stdin(Stdio::null()).kill_on_drop(true);
        let log = self.log_dir.join(format!("{}.log", r.name()));
        if let Ok(f) = std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new().create(true).append(true),
            0o640,
        )
        .open(&log)
        {
            if let Ok(f2) = f.try_clone() {
                cmd.stdout(f).stderr(f2);
            }
        }
        cmd
    }

    async fn run(self) {
        let mut backoff = self.spec.backoff.get();
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let held = *self.replica.hold.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(until) = held {
                let wait = until.saturating_duration_since(Instant::now());
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                *self.replica.hold.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            let started = Instant::now();
            let mut child = match self.command().spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(replica = %self.replica.name(), error = %e, "cannot start replica");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.spec.max_backoff.get());
                    continue;
                }
            };
            let pid = child.id().unwrap_or(0);
            let undo = ProcessUndo {
                pid,
                pgid: pid,
                start_time: process_start_time(pid),
            };
            let ledger_id = self.ledger.as_ref().and_then(|l| {
                let prepared = Prepared {
                    targets: vec![format!("pid {pid} ({})", self.replica.name())],
                    undo: serde_json::to_value(&undo).expect("serializable"),
                    irreversible: false,
                };
                let far = SystemTime::now() + Duration::from_secs(86_400);
                l.record_inject("fleet", "process", "local", &prepared, far)
                    .map_err(|e| tracing::error!(error = %e, "cannot record fleet process in the ledger"))
                    .ok()
            });
            self.set(|s| {
                s.pid = Some(pid);
                s.ledger_id = ledger_id;
            });
            tracing::debug!(replica = %self.replica.name(), pid, port = self.replica.port, "replica started");

            // Probe readiness until the process exits or the fleet stops.
            let exit = loop {
                let ready = match &self.spec.health {
                    Some(path) => probe(self.replica.port, path).await,
                    None => true,
                };
                if self.replica.state().ready != ready {
                    self.set(|s| s.ready = ready);
                }
                tokio::select! {
                    status = child.wait() => break Some(status),
                    _ = self.cancel.cancelled() => break None,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            };
            self.set(|s| {
                s.ready = false;
                s.pid = None;
            });
            match exit {
                None => {
                    stop_process(&undo, Duration::from_secs(5)).await;
                    let _ = child.wait().await;
                    if let (Some(l), Some(id)) = (&self.ledger, ledger_id) {
                        let _ = l.record_revert(id, Ok(()));
                    }
                    return;
                }
                Some(status) => {
                    // Whatever else the replica started dies with it, as in a pod.
                    signal_process(&undo, libc::SIGKILL);
                    if let (Some(l), Some(id)) = (&self.ledger, ledger_id) {
                        let _ = l.record_revert(id, Ok(()));
                    }
                    let status = status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| e.to_string());
                    tracing::info!(replica = %self.replica.name(), %status, restart_in = ?backoff, "replica exited; restarting");
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff = self.spec.backoff.get();
                    }
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.spec.max_backoff.get());
                    self.set(|s| s.restarts += 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_that_would_signal_everything_are_refused() {
        let rec = |pid, pgid| ProcessUndo {
            pid,
            pgid,
            start_time: None,
        };
        // kill(-1) is every process, kill(0) our own group, 1 is init.
        assert!(!signalable(&rec(0, 0)));
        assert!(!signalable(&rec(1, 1)));
        assert!(!signalable(&rec(12345, 1)));
        assert!(!signalable(&rec(12345, 0)));
        let own = unsafe { libc::getpgrp() } as u32;
        assert!(!signalable(&rec(12345, own)));
        assert!(!signalable(&rec(std::process::id(), 12345)));
        assert!(signalable(&rec(12345, 12345)));
    }
}
