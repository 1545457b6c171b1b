//! `dns`: wrong answers from gameday's DNS server (see [`super::dns`]) for name patterns.
//!
//! Like the proxy, the DNS server lives inside the runner: the undo record names the
//! runner's pid, and `gameday recover` in a fresh process has nothing to undo.

use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::net::SandboxNet;
use super::spec::DnsSpec;
use crate::targets::{Fault, Prepared, Resolution, TargetError};

/// The kind name used in scenarios and the ledger.
pub const KIND: &str = "dns";

/// What the ledger keeps to undo a `dns` fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsUndo {
    /// The rule's id on the server (the scenario's fault name).
    pub fault: String,
    /// The server's address at injection.
    pub server: String,
    /// The runner process that held the server.
    pub runner_pid: u32,
    /// For people reading the ledger.
    pub note: String,
}

/// One `dns` fault of a scenario.
pub struct DnsFault {
    name: String,
    spec: DnsSpec,
    sandbox: SandboxNet,
}

impl DnsFault {
    /// A fault named `name` (unique in the scenario: it is the rule's id on the server).
    pub fn new(name: impl Into<String>, spec: DnsSpec, sandbox: SandboxNet) -> Self {
        DnsFault {
            name: name.into(),
            spec,
            sandbox,
        }
    }

    fn server(&self) -> Result<super::dns::DnsHandle, TargetError> {
        self.sandbox.dns().ok_or_else(|| TargetError::Unreachable {
            target: "local".into(),
            reason: "the sandbox DNS server is not running (the fleet starts it)".into(),
        })
    }
}

fn invalid(name: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError::Invalid(format!("fault {name}: {e}"))
}

#[async_trait]
impl Fault for DnsFault {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        self.spec.rule().map_err(|e| invalid(&self.name, e))?;
        let server = if !self.sandbox.is_running() && self.sandbox.planned().is_some() {
            // `plan`: the server starts with the fleet.
            "the sandbox dns server".to_string()
        } else {
            self.server()?.addr().to_string()
        };
        Ok(Resolution {
            targets: self
                .spec
                .names
                .iter()
                .map(|n| format!("dns {n} at {server}"))
                .collect(),
            eligible: self.spec.names.len(),
            cap: None,
            notes: vec![format!(
                "{} with probability {}",
                serde_json::to_value(self.spec.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                self.spec.probability
            )],
        })
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        let resolution = self.resolve().await?;
        let undo = DnsUndo {
            fault: self.name.clone(),
            server: self.server()?.addr().to_string(),
            runner_pid: std::process::id(),
            note: "the DNS server lives in the runner: if the runner died, the fault died with \
                   it and recover has nothing to undo"
                .into(),
        };
        Ok(Prepared {
            targets: resolution.targets,
            undo: serde_json::to_value(&undo).map_err(|e| invalid(&self.name, e))?,
            irreversible: false,
        })
    }

    async fn inject(&self, _prepared: &Prepared, _deadline: SystemTime) -> Result<(), TargetError> {
        let rule = self.spec.rule().map_err(|e| invalid(&self.name, e))?;
        self.server()?
            .set_rule(&self.name, &rule)
            .map_err(|e| invalid(&self.name, e))?;
        tracing::info!(fault = %self.name, names = ?self.spec.names, "dns fault active");
        Ok(())
    }
}

/// Undo a `dns` fault from its ledger record alone. Idempotent.
pub fn revert(sandbox: &SandboxNet, undo: &serde_json::Value) -> Result<(), TargetError> {
    let undo: DnsUndo = serde_json::from_value(undo.clone())
        .map_err(|e| TargetError::Invalid(format!("dns undo record is malformed: {e}")))?;
    if undo.runner_pid != std::process::id() {
        tracing::info!(
            fault = %undo.fault,
            runner_pid = undo.runner_pid,
            "dns fault lived in a runner that is gone: nothing to undo"
        );
        return Ok(());
    }
    if let Some(dns) = sandbox.dns() {
        dns.clear_rule(&undo.fault);
    }
    Ok(())
}
