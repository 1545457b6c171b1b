//! `pod_kill`: delete selected pods with a grace period, once or on every tick of the
//! fault entry's `every`. Irreversible (a deleted pod is gone; its controller makes a new one),
//! and marked so in the ledger.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::Api;
use serde::{Deserialize, Serialize};

use super::client::{api_code, op_err};
use super::pods::{resolve_pods, PodRef};
use super::spec::PodKillSpec;
use super::{parse_undo, Shared};
use crate::targets::{Fault, Prepared, Resolution, TargetError};

/// The kind as written in scenarios.
pub const KIND: &str = "pod_kill";

/// The ledger record. Nothing to undo; it says what was (and will be) hit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodKillUndo {
    /// Pods deleted.
    pub pods: Vec<PodRef>,
    /// Grace period of each delete, if not the pods' own.
    pub grace_period_seconds: Option<u32>,
}

/// A bound `pod_kill` fault.
pub struct PodKill {
    shared: Arc<Shared>,
    name: String,
    spec: PodKillSpec,
}

impl PodKill {
    /// Bind the spec to a target.
    pub fn new(shared: Arc<Shared>, name: String, spec: PodKillSpec) -> Self {
        Self { shared, name, spec }
    }

    async fn resolve_refs(&self) -> Result<(Vec<PodRef>, Resolution), TargetError> {
        let s = &self.spec;
        resolve_pods(
            &self.shared,
            &self.name,
            &s.selector,
            s.mode,
            s.value,
            s.max_targets,
        )
        .await
    }
}

/// Delete one pod, only if it is still the pod that was selected (UID precondition).
/// Already gone (404) or replaced under the same name (409) is fine: the pod we meant to
/// kill no longer runs.
pub async fn delete_pod(
    shared: &Shared,
    pod: &PodRef,
    grace_period_seconds: Option<u32>,
) -> Result<bool, TargetError> {
    let api: Api<Pod> = Api::namespaced(shared.client().await?, &pod.namespace);
    let dp = DeleteParams {
        grace_period_seconds,
        preconditions: (!pod.uid.is_empty()).then(|| Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&pod.name, &dp).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(false),
        Err(e) => Err(op_err(
            "delete pod",
            format!("{}/{}", pod.namespace, pod.name),
            e,
        )),
    }
}

#[async_trait]
impl Fault for PodKill {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        Ok(self.resolve_refs().await?.1)
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        self.spec
            .validate()
            .map_err(|e| TargetError::Invalid(format!("fault {}: {e}", self.name)))?;
        let (pods, res) = self.resolve_refs().await?;
        let undo = PodKillUndo {
            pods,
            grace_period_seconds: self.spec.grace_seconds(),
        };
        Ok(Prepared {
            targets: res.targets,
            undo: serde_json::to_value(undo).expect("undo serializes"),
            irreversible: true,
        })
    }

    /// Delete the prepared pods. Repeats (`every`) are new prepare/inject rounds driven
    /// by the engine, each selecting afresh and each in the ledger first.
    async fn inject(&self, prepared: &Prepared, _deadline: SystemTime) -> Result<(), TargetError> {
        let undo: PodKillUndo = parse_undo(KIND, &prepared.undo)?;
        for pod in &undo.pods {
            let deleted = delete_pod(&self.shared, pod, undo.grace_period_seconds).await?;
            tracing::info!(fault = %self.name, pod = %pod.target(), deleted, "pod_kill");
        }
        Ok(())
    }
}
