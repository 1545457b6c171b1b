//! The targets of one run, built from the scenario (for `plan` and `run`) or from a ledger
//! (for `recover`), and the one place that maps a fault entry to its target.
//!
//! When a scenario configures both Kubernetes and AWS, this is also where the two meet: the
//! AWS target's spot notices go to the Kubernetes target's cordon-and-drain
//! ([`KubernetesTarget::spot_notice_handler`]), in a run and in `recover` alike.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::ledger::Ledger;
use crate::scenario::model::{FaultEntry, Scenario};
use crate::targets::aws::AwsTarget;
use crate::targets::kubernetes::KubernetesTarget;
use crate::targets::local::LocalSandbox;
use crate::targets::{Fault, Target, TargetError};

/// The configured targets of a run.
#[derive(Clone, Default)]
pub struct Targets {
    /// The local sandbox, when configured.
    pub local: Option<LocalSandbox>,
    /// The Kubernetes cluster, when configured.
    pub kubernetes: Option<KubernetesTarget>,
    /// AWS EC2, when configured.
    pub aws: Option<AwsTarget>,
}

impl Targets {
    /// Builds the scenario's targets. Nothing is contacted or started here (the AWS
    /// credential and region chains are read, not called).
    pub async fn from_scenario(
        s: &Scenario,
        dir: &Path,
        ledger: Option<Arc<Ledger>>,
        cancel: &CancellationToken,
        yes: bool,
    ) -> Self {
        let local =
            s.target.local.clone().map(|c| {
                LocalSandbox::new(c, dir.to_path_buf(), ledger.clone(), cancel.child_token())
            });
        // Reads the kubeconfig and checks the context; connects on first use.
        let kubernetes = s
            .target
            .kubernetes
            .clone()
            .map(|c| KubernetesTarget::new(c, yes));
        let aws = match s.target.aws.clone() {
            Some(c) => {
                let aws = AwsTarget::connect(c).await;
                let aws = if yes { aws.confirm_any_account() } else { aws };
                Some(with_notices(aws, &kubernetes))
            }
            None => None,
        };
        Targets {
            local,
            kubernetes,
            aws,
        }
    }

    /// Rebuilds the targets a ledger names, able to revert its records.
    pub async fn from_ledger(
        configs: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<Self, TargetError> {
        let mut t = Targets::default();
        for name in configs.keys() {
            match name.as_str() {
                "local" => t.local = Some(LocalSandbox::for_recovery()),
                "kubernetes" => {
                    t.kubernetes = Some(KubernetesTarget::for_recovery(&configs[name])?)
                }
                "aws" => {}
                other => {
                    return Err(TargetError::Invalid(format!(
                        "the ledger names target `{other}`, which this gameday cannot rebuild"
                    )))
                }
            }
        }
        if let Some(c) = configs.get("aws") {
            let aws = AwsTarget::from_ledger_config(c).await?;
            t.aws = Some(with_notices(aws, &t.kubernetes));
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
        if let Some(a) = &self.aws {
            v.push(a);
        }
        v
    }

    /// A target by name.
    pub fn get(&self, name: &str) -> Option<&dyn Target> {
        self.all().into_iter().find(|t| t.name() == name)
    }

    /// The runtime fault for one scenario entry.
    pub fn fault(&self, name: &str, entry: &FaultEntry) -> Result<Arc<dyn Fault>, TargetError> {
        if let (Some(l), Some(spec)) = (&self.local, entry.local_spec()) {
            return Ok(Arc::from(l.fault(name, spec)));
        }
        if let (Some(k), Some(spec)) = (&self.kubernetes, entry.kubernetes_spec()) {
            return Ok(Arc::from(k.fault(name, spec)));
        }
        if let (Some(a), Some(spec)) = (&self.aws, entry.aws_spec()) {
            return a.fault(name, spec);
        }
        Err(TargetError::Invalid(format!(
            "fault `{name}`: no configured target handles its kind"
        )))
    }
}

/// Spot notices of `aws` go to the cluster's cordon-and-drain, when there is a cluster.
fn with_notices(aws: AwsTarget, kubernetes: &Option<KubernetesTarget>) -> AwsTarget {
    match kubernetes {
        Some(k) => aws.with_notice_handler(k.spot_notice_handler()),
        None => aws,
    }
}
