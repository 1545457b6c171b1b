//! `network`: toxics on the link into a fleet service, through its proxy (see [`super::proxy`]).
//!
//! The proxy lives inside the runner process. So the undo record names the runner's pid: a
//! revert in the same process clears the fault's toxics; a revert by `gameday recover` in a
//! fresh process finds the runner (and with it the proxy and the fault) gone, and has
//! nothing to undo.

use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::net::SandboxNet;
use super::spec::NetworkSpec;
use crate::targets::{Fault, Prepared, Resolution, TargetError};

/// The kind name used in scenarios and the ledger.
pub const KIND: &str = "network";

/// What the ledger keeps to undo a `network` fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkUndo {
    /// The fault's id on the proxy (the scenario's fault name).
    pub fault: String,
    /// The service whose link was hit.
    pub service: String,
    /// The proxy's address at injection.
    pub proxy: String,
    /// The runner process that held the proxy.
    pub runner_pid: u32,
    /// For people reading the ledger.
    pub note: String,
}

/// One `network` fault of a scenario.
pub struct NetworkFault {
    name: String,
    spec: NetworkSpec,
    sandbox: SandboxNet,
}

impl NetworkFault {
    /// A fault named `name` (unique in the scenario: it is the proxy's fault id).
    pub fn new(name: impl Into<String>, spec: NetworkSpec, sandbox: SandboxNet) -> Self {
        NetworkFault {
            name: name.into(),
            spec,
            sandbox,
        }
    }

    fn proxy(&self) -> Result<super::proxy::ProxyHandle, TargetError> {
        self.sandbox
            .proxies
            .get(&self.spec.service)
            .ok_or_else(|| TargetError::Selection {
                fault: self.name.clone(),
                reason: format!(
                    "no fleet service named {:?} has a proxy (services: {})",
                    self.spec.service,
                    self.sandbox.proxies.services().join(", ")
                ),
            })
    }
}

fn invalid(name: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError::Invalid(format!("fault {name}: {e}"))
}

#[async_trait]
impl Fault for NetworkFault {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        self.spec
            .link_faults()
            .map_err(|e| invalid(&self.name, e))?;
        let mut notes = vec![format!("{}% of connections affected", self.spec.percent)];
        let addr = if !self.sandbox.is_running() && self.sandbox.planned().is_some() {
            // `plan`: nothing runs yet; resolve against the configuration.
            let port = self
                .sandbox
                .planned()
                .and_then(|c| c.services.iter().find(|s| s.name == self.spec.service))
                .and_then(|s| s.port)
                .ok_or_else(|| TargetError::Selection {
                    fault: self.name.clone(),
                    reason: format!(
                        "no local service named {:?} with a `port` (its proxy's address)",
                        self.spec.service
                    ),
                })?;
            notes.push("the proxy starts with the fleet".into());
            format!("127.0.0.1:{port}")
        } else {
            self.proxy()?.local_addr().to_string()
        };
        Ok(Resolution {
            targets: vec![format!("link into {} ({addr})", self.spec.service)],
            eligible: 1,
            cap: None,
            notes,
        })
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        let resolution = self.resolve().await?;
        let proxy = self.proxy()?;
        let undo = NetworkUndo {
            fault: self.name.clone(),
            service: self.spec.service.clone(),
            proxy: proxy.local_addr().to_string(),
            runner_pid: std::process::id(),
            note: "the proxy lives in the runner: if the runner died, the fault died with it and \
                   recover has nothing to undo"
                .into(),
        };
        Ok(Prepared {
            targets: resolution.targets,
            undo: serde_json::to_value(&undo).map_err(|e| invalid(&self.name, e))?,
            irreversible: false,
        })
    }

    async fn inject(&self, _prepared: &Prepared, _deadline: SystemTime) -> Result<(), TargetError> {
        // No expiry timer: the toxics cannot outlive the runner, which holds the proxy.
        let faults = self
            .spec
            .link_faults()
            .map_err(|e| invalid(&self.name, e))?;
        self.proxy()?.set_faults(&self.name, faults);
        tracing::info!(fault = %self.name, service = %self.spec.service, "network fault active");
        Ok(())
    }
}

/// Undo a `network` fault from its ledger record alone. Idempotent.
pub fn revert(sandbox: &SandboxNet, undo: &serde_json::Value) -> Result<(), TargetError> {
    let undo: NetworkUndo = serde_json::from_value(undo.clone())
        .map_err(|e| TargetError::Invalid(format!("network undo record is malformed: {e}")))?;
    if undo.runner_pid != std::process::id() {
        tracing::info!(
            fault = %undo.fault,
            runner_pid = undo.runner_pid,
            "network fault lived in a runner that is gone: nothing to undo"
        );
        return Ok(());
    }
    if let Some(proxy) = sandbox.proxies.get(&undo.service) {
        proxy.clear(&undo.fault);
    }
    Ok(())
}
