//! The sandbox's network plane in one place: the service proxies, the DNS server and the
//! per-instance metadata endpoints of a local fleet, plus the way to terminate an instance.
//!
//! The fleet supervisor fills it as it starts services (one [`SandboxNet`] per local target);
//! the `network`, `dns` and `spot_interruption` faults hold a clone and look their objects up
//! in it when they resolve, because faults are built from the scenario before the fleet runs.
//! Everything here lives inside the runner process and dies with it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::config::LocalTarget;
use super::dns::{DnsError, DnsHandle, DnsServer};
use super::fleet::{EnvHook, Fleet, ProcessUndo};
use super::proxy::{Proxy, ProxyError, ProxyHandle, ProxyRegistry};
use super::spot::SpotAction;
use super::spot::{InstanceTerminator, SpotEndpoint, SpotError, SpotHandle, SpotRegistry};
use crate::targets::TargetError;

/// See the module documentation. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct SandboxNet {
    /// Service proxies by service name.
    pub proxies: ProxyRegistry,
    /// Metadata endpoints by instance name.
    pub spots: SpotRegistry,
    dns: Arc<RwLock<Option<DnsHandle>>>,
    terminator: Arc<RwLock<Option<Arc<dyn InstanceTerminator>>>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// The fleet as configured, so that `plan` can resolve faults before anything runs.
    planned: Option<Arc<LocalTarget>>,
}

impl std::fmt::Debug for SandboxNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxNet")
            .field("proxies", &self.proxies.services())
            .field("instances", &self.spots.instances())
            .field("dns", &self.dns().map(|d| d.addr()))
            .finish_non_exhaustive()
    }
}

impl SandboxNet {
    /// An empty sandbox whose servers all stop when `cancel` fires.
    pub fn new(cancel: CancellationToken) -> Self {
        SandboxNet {
            proxies: ProxyRegistry::default(),
            spots: SpotRegistry::default(),
            dns: Arc::new(RwLock::new(None)),
            terminator: Arc::new(RwLock::new(None)),
            cancel,
            tracker: TaskTracker::new(),
            planned: None,
        }
    }

    /// Remember the fleet's configuration, so faults resolve against it while the sandbox is
    /// not running (`plan`).
    pub fn with_plan(mut self, config: LocalTarget) -> Self {
        self.planned = Some(Arc::new(config));
        self
    }

    /// The fleet's configuration, if given with [`SandboxNet::with_plan`].
    pub fn planned(&self) -> Option<&LocalTarget> {
        self.planned.as_deref()
    }

    /// Whether the sandbox's servers run (the fleet started), as opposed to only planned.
    pub fn is_running(&self) -> bool {
        self.dns().is_some() || !self.proxies.services().is_empty()
    }

    /// Every spot instance name the planned fleet will have.
    pub fn planned_instances(&self) -> Vec<String> {
        self.planned()
            .map(|c| {
                c.services
                    .iter()
                    .flat_map(|svc| {
                        let size = svc.instance_size.max(1);
                        (0..svc.replicas.div_ceil(size)).map(|i| instance_name(&svc.name, i))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Start the DNS server (`127.0.0.1:0` picks a port); its address is what fleet
    /// processes get as `GAMEDAY_DNS`.
    pub async fn start_dns(&self, listen: SocketAddr) -> Result<DnsHandle, DnsError> {
        let handle = DnsServer::start(listen, self.cancel.child_token()).await?;
        *self.dns.write().unwrap_or_else(|p| p.into_inner()) = Some(handle.clone());
        Ok(handle)
    }

    /// The DNS server, once started.
    pub fn dns(&self) -> Option<DnsHandle> {
        self.dns.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Start the proxy that serves `service`'s address over `backends` (the healthy
    /// replicas), register it, and make `<service>.gameday.local` resolve to it.
    pub async fn start_service_proxy(
        &self,
        service: &str,
        listen: SocketAddr,
        backends: watch::Receiver<Vec<SocketAddr>>,
    ) -> Result<ProxyHandle, ProxyError> {
        let handle = Proxy::start(listen, backends, self.cancel.child_token()).await?;
        self.proxies.insert(service, handle.clone());
        if let (Some(dns), std::net::IpAddr::V4(ip)) = (self.dns(), handle.local_addr().ip()) {
            dns.set_service(service, ip);
        } else if let Some(dns) = self.dns() {
            dns.set_service(service, Ipv4Addr::LOCALHOST);
        }
        Ok(handle)
    }

    /// Start the metadata endpoint of `instance` on a free loopback port and register it;
    /// its [`SpotHandle::url`] is what the instance's replicas get as `GAMEDAY_METADATA_URL`.
    pub async fn start_instance_endpoint(&self, instance: &str) -> Result<SpotHandle, SpotError> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let handle = SpotEndpoint::start(instance, listen, self.cancel.child_token()).await?;
        self.spots.insert(handle.clone());
        Ok(handle)
    }

    /// Set what ends an instance's processes when its spot notice expires (the fleet).
    pub fn set_terminator(&self, terminator: Arc<dyn InstanceTerminator>) {
        *self.terminator.write().unwrap_or_else(|p| p.into_inner()) = Some(terminator);
    }

    /// What ends an instance's processes, if the fleet has registered it.
    pub fn terminator(&self) -> Option<Arc<dyn InstanceTerminator>> {
        self.terminator
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The token that stops every server of the sandbox.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Where background work of the sandbox's faults (pending spot terminations) is tracked.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Before the fleet starts: start the DNS server and one metadata endpoint per spot
    /// instance of every service, and return the hook that gives each replica
    /// `GAMEDAY_DNS` and its instance's `GAMEDAY_METADATA_URL`. Pass it to [`Fleet::start`].
    pub async fn start_for(&self, config: &LocalTarget) -> Result<EnvHook, TargetError> {
        let dns = match self.dns() {
            Some(d) => d,
            None => self
                .start_dns(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .map_err(|e| op("start the sandbox dns server", "127.0.0.1", e))?,
        };
        let mut urls = BTreeMap::new();
        for svc in &config.services {
            let size = svc.instance_size.max(1);
            for instance in 0..svc.replicas.div_ceil(size) {
                let name = instance_name(&svc.name, instance);
                let endpoint = match self.spots.get(&name) {
                    Some(e) => e,
                    None => self
                        .start_instance_endpoint(&name)
                        .await
                        .map_err(|e| op("start the metadata endpoint of", &name, e))?,
                };
                urls.insert((svc.name.clone(), instance), endpoint.url());
            }
        }
        let dns_addr = dns.addr().to_string();
        Ok(Arc::new(
            move |service: &str, _replica: u32, instance: u32| {
                let mut env = vec![("GAMEDAY_DNS".to_string(), dns_addr.clone())];
                if let Some(url) = urls.get(&(service.to_string(), instance)) {
                    env.push(("GAMEDAY_METADATA_URL".to_string(), url.clone()));
                }
                env
            },
        ))
    }

    /// After the fleet started: put a proxy on every service's address (`port`) over its
    /// ready replicas, name it in DNS, and let spot notices terminate fleet instances.
    pub async fn attach_fleet(
        &self,
        config: &LocalTarget,
        fleet: Arc<Fleet>,
    ) -> Result<(), TargetError> {
        for svc in &config.services {
            let Some(port) = svc.port else {
                // No service address: reachable only replica by replica, nothing to proxy.
                continue;
            };
            let ready = fleet.ready_addrs(&svc.name).ok_or_else(|| {
                TargetError::Invalid(format!("the fleet has no service `{}`", svc.name))
            })?;
            let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            self.start_service_proxy(&svc.name, listen, ready)
                .await
                .map_err(|e| op("start the service proxy of", &svc.name, e))?;
        }
        self.set_terminator(Arc::new(FleetTerminator::new(fleet)));
        Ok(())
    }

    /// Stop every server and pending termination and wait for them.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        for service in self.proxies.services() {
            if let Some(p) = self.proxies.remove(&service) {
                p.shutdown().await;
            }
        }
        for instance in self.spots.instances() {
            if let Some(s) = self.spots.remove(&instance) {
                s.shutdown().await;
            }
        }
        if let Some(dns) = self.dns() {
            dns.stopped().await;
        }
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn op(
    action: &str,
    object: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> TargetError {
    TargetError::Op {
        action: action.to_string(),
        object: object.to_string(),
        source: e.into(),
    }
}

/// The name of a spot instance of a service: `<service>-i<n>` (replica names are
/// `<service>-<n>`, so the two never clash).
pub fn instance_name(service: &str, instance: u32) -> String {
    format!("{service}-i{instance}")
}

/// Ends a fleet instance's replicas when its spot notice expires, through the fleet
/// supervisor's own process control; the supervisor brings replacements up after
/// `replacement_delay`, as a new instance would boot elsewhere.
pub struct FleetTerminator {
    fleet: Arc<Fleet>,
    /// How long the instance stays gone before the supervisor starts replacements.
    pub replacement_delay: Duration,
    /// SIGTERM, then SIGKILL after this.
    pub grace: Duration,
}

impl FleetTerminator {
    /// A terminator over `fleet` with a 2 s replacement delay and a 5 s grace.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        FleetTerminator {
            fleet,
            replacement_delay: Duration::from_secs(2),
            grace: Duration::from_secs(5),
        }
    }
}

#[async_trait::async_trait]
impl super::spot::InstanceTerminator for FleetTerminator {
    async fn terminate_instance(
        &self,
        instance: &str,
        _action: SpotAction,
    ) -> Result<Vec<String>, TargetError> {
        let replicas: Vec<_> = self
            .fleet
            .replicas()
            .filter(|r| instance_name(&r.service, r.instance) == instance)
            .cloned()
            .collect();
        if replicas.is_empty() {
            return Err(TargetError::Selection {
                fault: "spot_interruption".into(),
                reason: format!("no fleet replica runs on instance {instance:?}"),
            });
        }
        let until = Instant::now() + self.replacement_delay;
        let mut ended = Vec::new();
        let mut stops = tokio::task::JoinSet::new();
        let grace = self.grace;
        for r in &replicas {
            r.hold_until(until);
            if let Some(pid) = r.state().pid {
                let undo = ProcessUndo {
                    pid,
                    pgid: pid,
                    start_time: super::fleet::process_start_time(pid),
                };
                ended.push(format!("pid {pid} ({})", r.name()));
                stops.spawn(async move { super::fleet::stop_process(&undo, grace).await });
            }
        }
        while stops.join_next().await.is_some() {}
        Ok(ended)
    }

    fn out_of_service(&self) -> Vec<(String, u32)> {
        self.fleet
            .replicas()
            .filter(|r| {
                let st = r.state();
                st.pid.is_none() || !st.ready
            })
            .map(|r| (r.service.clone(), r.index))
            .collect()
    }
}
