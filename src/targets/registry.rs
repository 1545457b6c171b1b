//! The targets of one run, built from the scenario (for `plan` and `run`) or from a ledger
//! (for `recover`), and the one place that maps a fault entry to its target.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::kubernetes::KubernetesTarget;
use super::local::LocalSandbox;
use super::{Fault, Target, TargetError};
use crate::engine::ledger::Ledger;
use crate::scenario::model::{FaultEntry, Scenario};

/// The configured targets of a run.
#[derive(Clone, Default)]
pub struct Targets {
    /// The local sandbox, when configured.
    pub local: Option<LocalSandbox>,
    /// The Kubernetes cluster, when configured.
    pub kubernetes: Option<KubernetesTarget>,
}

impl Targets {
    /// Builds the scenario's targets. Nothing is contacted or started here.
    pub fn from_scenario(
        s: &Scenario,
        dir: &Path,
        ledger: Option<Arc<Ledger>>,
        cancel: &CancellationToken,
        yes: bool,
    ) -> Self {
        Targets {
            local: s.target.local.clone().map(|c| {
                LocalSandbox::new(c, dir.to_path_buf(), ledger.clone(), cancel.child_token())
            }),
            // Reads the kubeconfig and checks the context; connects on first use.
            kubernetes: s
                .target
                .kubernetes
                .clone()
                .map(|c| KubernetesTarget::new(c, yes)),
        }
    }

    /// Rebuilds the targets a ledger names, able to revert its records.
    pub fn from_ledger(
        configs: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<Self, TargetError> {
        let mut t = Targets::default();
        for name in configs.keys() {
            match name.as_str() {
                "local" => t.local = Some(LocalSandbox::for_recovery()),
                "kubernetes" => {
                    t.kubernetes = Some(KubernetesTarget::for_recovery(&configs[name])?)
                }
                other => {
                    return Err(TargetError::Invalid(format!(
                        "the ledger names target `{other}`, which this gameday cannot rebuild"
                    )))
                }
            }
        }
        Ok(t)
    }

    /// All configured targets.
    pub fn all(&self) -> Vec<&dyn Target> {
        let mut v: Vec<&dyn Target> = Vec::new();
        if let Some(l) = &self.local {
            v.push(l);
        }
        if let Some(k) = &self.kubernetes {
            v.push(k);
        }
        v
    }

    /// A target by name.
    pub fn get(&self, name: &str) -> Option<&dyn Target> {
        self.all().into_iter().find(|t| t.name() == name)
    }

    /// The runtime fault for one scenario entry.
    pub fn fault(&self, name: &str, entry: &FaultEntry) -> Result<Box<dyn Fault>, TargetError> {
        if let Some(f) = self.local.as_ref().and_then(|l| l.fault(name, entry)) {
            return Ok(f);
        }
        if let (Some(k), Some(spec)) = (&self.kubernetes, entry.kubernetes_spec()) {
            return Ok(k.fault(name, spec));
        }
        Err(TargetError::Invalid(format!(
            "fault `{name}`: no configured target handles its kind"
        )))
    }
}
