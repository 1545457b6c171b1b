//! The targets of one run, built from the scenario (for `plan` and `run`) or from a ledger
//! (for `recover`), and the one place that maps a fault entry to its target.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::local::LocalSandbox;
use super::{Fault, Target, TargetError};
use crate::engine::ledger::Ledger;
use crate::scenario::model::{FaultEntry, Scenario};

/// The configured targets of a run.
#[derive(Clone, Default)]
pub struct Targets {
    /// The local sandbox, when configured.
    pub local: Option<LocalSandbox>,
}

impl Targets {
    /// Builds the scenario's targets. Nothing is contacted or started here.
    pub fn from_scenario(
        s: &Scenario,
        dir: &Path,
        ledger: Option<Arc<Ledger>>,
        cancel: &CancellationToken,
    ) -> Self {
        Targets {
            local: s.target.local.clone().map(|c| {
                LocalSandbox::new(c, dir.to_path_buf(), ledger.clone(), cancel.child_token())
            }),
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
        Err(TargetError::Invalid(format!(
            "fault `{name}`: no configured target handles its kind"
        )))
    }
}
