//! The embedded local sandbox: real processes supervised by gameday ([`fleet`]), with faults
//! injected through signals ([`process_kill`]), gameday's own L4 proxy, DNS server and
//! spot-notice endpoint.

pub mod config;
pub mod fleet;
pub mod process_kill;

pub mod dns;
pub mod dns_fault;
pub mod net;
pub mod network_fault;
pub mod ports;
pub mod proxy;
pub mod spec;
pub mod spot;
pub mod spot_fault;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use self::config::{LocalTarget, ServiceSpec};
use self::fleet::{Fleet, ProcessUndo};
use crate::ledger::Ledger;
use crate::targets::{Fault, Target, TargetError};
use spec::LocalFaultSpec;

/// Shared state of the sandbox, reachable from each of its faults.
pub struct Sandbox {
    /// The scenario's `target.local` section.
    pub config: LocalTarget,
    dir: PathBuf,
    ledger: Option<Arc<Ledger>>,
    fleet: Mutex<Option<Arc<Fleet>>>,
    cancel: CancellationToken,
    /// Proxies, DNS server and spot endpoints in front of the fleet.
    pub net: net::SandboxNet,
}

impl Sandbox {
    /// The running fleet, or an error when the sandbox was not started (a bug in the
    /// engine's order, or `plan`, which never starts it).
    pub fn fleet(&self) -> Result<Arc<Fleet>, TargetError> {
        self.fleet
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| TargetError::Invalid("the local fleet is not running".into()))
    }

    /// A service's spec by name.
    pub fn service_spec(&self, name: &str) -> Option<&ServiceSpec> {
        self.config.services.iter().find(|s| s.name == name)
    }
}

/// The local target: a handle on the sandbox.
#[derive(Clone)]
pub struct LocalSandbox {
    inner: Arc<Sandbox>,
}

impl LocalSandbox {
    /// A sandbox for `config`, keeping its logs and state in `dir`. Nothing starts until
    /// [`Target::start`].
    pub fn new(
        config: LocalTarget,
        dir: PathBuf,
        ledger: Option<Arc<Ledger>>,
        cancel: CancellationToken,
    ) -> Self {
        let net = net::SandboxNet::new(cancel.child_token()).with_plan(config.clone());
        LocalSandbox {
            inner: Arc::new(Sandbox {
                config,
                dir,
                ledger,
                fleet: Mutex::new(None),
                net,
                cancel,
            }),
        }
    }

    /// A sandbox able only to revert ledger records (for `gameday recover`).
    pub fn for_recovery() -> Self {
        let config = LocalTarget {
            services: vec![],
            max_percent: 0.0,
            startup_timeout: Default::default(),
        };
        Self::new(config, PathBuf::new(), None, CancellationToken::new())
    }

    /// The shared state (for tests and the sandbox's components).
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.inner
    }

    /// The fault object for one of the sandbox's fault kinds.
    pub fn fault(&self, name: &str, spec: LocalFaultSpec) -> Box<dyn Fault> {
        let net = || self.inner.net.clone();
        match spec {
            LocalFaultSpec::ProcessKill(spec) => Box::new(process_kill::ProcessKill {
                name: name.into(),
                spec,
                sandbox: self.inner.clone(),
            }),
            LocalFaultSpec::Network(spec) => {
                Box::new(network_fault::NetworkFault::new(name, spec, net()))
            }
            LocalFaultSpec::Dns(spec) => Box::new(dns_fault::DnsFault::new(name, spec, net())),
            LocalFaultSpec::SpotInterruption(spec) => {
                Box::new(spot_fault::SpotFault::new(name, spec, net()))
            }
        }
    }
}

#[async_trait]
impl Target for LocalSandbox {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn check_reachable(&self) -> Result<(), TargetError> {
        // The sandbox is this machine: reachable means the commands exist and the service
        // addresses are free.
        for s in &self.inner.config.services {
            if let Some(port) = s.port {
                check_port_free(&s.name, port)?;
            }
            let Some(first) = s.command.first() else {
                return Err(TargetError::Invalid(format!(
                    "service `{}` has an empty command",
                    s.name
                )));
            };
            if first != "gameday" && !first.contains('/') && which(first).is_none() {
                return Err(TargetError::Unreachable {
                    target: "local".into(),
                    reason: format!("service `{}`: program `{first}` is not on the PATH", s.name),
                });
            }
        }
        Ok(())
    }

    async fn start(&self) -> Result<(), TargetError> {
        // DNS and spot endpoints first: replicas get their addresses at spawn.
        let env_hook = self.inner.net.start_for(&self.inner.config).await?;
        let fleet = Fleet::start(
            &self.inner.config,
            self.inner.dir.join("fleet"),
            self.inner.ledger.clone(),
            Some(env_hook),
            self.inner.cancel.child_token(),
        )
        .await?;
        let fleet = Arc::new(fleet);
        *self.inner.fleet.lock().unwrap_or_else(|p| p.into_inner()) = Some(fleet.clone());
        // Then the service addresses, over the replicas now ready.
        if let Err(e) = self.inner.net.attach_fleet(&self.inner.config, fleet).await {
            // Leave nothing running behind a failed start.
            let _ = self.shutdown().await;
            return Err(e);
        }
        Ok(())
    }

    async fn revert(&self, kind: &str, undo: &serde_json::Value) -> Result<(), TargetError> {
        if crate::failpoints::fires("local-revert", kind) {
            return Err(TargetError::Unreachable {
                target: "local".into(),
                reason: format!("fail point local-revert ({kind})"),
            });
        }
        match kind {
            // A killed process cannot be brought back; the supervisor replaces it.
            "process_kill" => Ok(()),
            "process" => {
                let u: ProcessUndo = serde_json::from_value(undo.clone())
                    .map_err(|e| TargetError::Invalid(format!("bad process record: {e}")))?;
                fleet::stop_process(&u, Duration::from_secs(5)).await;
                Ok(())
            }
            network_fault::KIND => network_fault::revert(&self.inner.net, undo),
            dns_fault::KIND => dns_fault::revert(&self.inner.net, undo),
            spot_fault::KIND => spot_fault::revert(&self.inner.net, undo),
            other => Err(TargetError::Invalid(format!(
                "the local target has no fault kind `{other}` to revert"
            ))),
        }
    }

    fn ledger_config(&self) -> serde_json::Value {
        serde_json::json!({ "dir": self.inner.dir })
    }

    async fn shutdown(&self) -> Result<(), TargetError> {
        let fleet = self
            .inner
            .fleet
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(f) = fleet {
            f.stop().await;
        }
        self.inner.net.shutdown().await;
        Ok(())
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.is_file())
}

/// Fails when another program already listens on a service address, naming it when it can
/// be found, so the run stops before anything starts (exit 5) with what to do.
fn check_port_free(service: &str, port: u16) -> Result<(), TargetError> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(e) => {
            let who = port_owner(port)
                .map(|(pid, comm)| format!(" by pid {pid} ({comm})"))
                .unwrap_or_default();
            Err(TargetError::Unreachable {
                target: "local".into(),
                reason: format!(
                    "service `{service}`: port {port} on 127.0.0.1 is already in use{who} ({e}); stop that program or choose another `port`"
                ),
            })
        }
    }
}

/// The process listening on TCP `port`, best effort: the socket's inode from
/// `/proc/net/tcp{,6}`, then the process holding it among `/proc/*/fd`. Read by hand: the
/// only need is this one lookup, for an error message.
fn port_owner(port: u16) -> Option<(u32, String)> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|f| {
        std::fs::read_to_string(f)
            .ok()?
            .lines()
            .skip(1)
            .find_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                let local_port = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
                // State 0A is LISTEN.
                (local_port == port && cols.get(3) == Some(&"0A"))
                    .then(|| cols.get(9).map(|s| s.to_string()))?
            })
    })?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
        let pid: u32 = p.file_name().to_str()?.parse().ok()?;
        let holds = std::fs::read_dir(p.path().join("fd"))
            .ok()?
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| l.to_str() == Some(target.as_str()))
            });
        holds.then(|| {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            (pid, comm.trim().to_string())
        })
    })
}
