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

use super::dns::{DnsError, DnsHandle, DnsServer};
use super::proxy::{Proxy, ProxyError, ProxyHandle, ProxyRegistry};
use super::spot::{InstanceTerminator, SpotEndpoint, SpotError, SpotHandle, SpotRegistry};

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
        }
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
