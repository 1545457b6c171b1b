//! `pod_kill`: delete selected pods with a grace period, once or every `interval` until
//! the fault ends. Irreversible (a deleted pod is gone; its controller makes a new one),
//! and marked so in the ledger.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::Api;
use serde::{Deserialize, Serialize};

use super::client::{api_code, op_err};
use super::pods::{resolve_pods, PodRef};
use super::spec::{parse_duration, PodKillSpec};
use super::{parse_undo, Shared};
use crate::targets::{Fault, Prepared, Resolution, TargetError};

/// The kind as written in scenarios.
pub const KIND: &str = "pod_kill";

/// The ledger record. Nothing to undo; it says what was (and will be) hit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodKillUndo {
    /// Pods of the first round.
    pub pods: Vec<PodRef>,
    /// Grace period of each delete, if not the pods' own.
    pub grace_period_seconds: Option<u32>,
    /// Repeat interval, if the fault repeats (later rounds select afresh).
    pub interval_ms: Option<u64>,
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

    fn grace(&self) -> Result<Option<u32>, TargetError> {
        self.spec
            .grace_period
            .as_deref()
            .map(|g| {
                parse_duration("grace_period", g)
                    .map(|d| d.as_secs() as u32)
                    .map_err(|e| TargetError::Invalid(e.to_string()))
            })
            .transpose()
    }

    async fn resolve_refs(&self) -> Result<(Vec<PodRef>, Resolution), TargetError> {
        let s = &self.spec;
        resolve_pods(&self.shared, &self.name, &s.selector, s.mode, s.value, s.max_targets).await
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
    let api: Api<Pod> = Api::namespaced(shared.kube.client.clone(), &pod.namespace);
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
        let interval_ms = match &self.spec.interval {
            Some(i) => Some(
                parse_duration("interval", i)
                    .map_err(|e| TargetError::Invalid(e.to_string()))?
                    .as_millis() as u64,
            ),
            None => None,
        };
        let undo = PodKillUndo {
            pods,
            grace_period_seconds: self.grace()?,
            interval_ms,
        };
        Ok(Prepared {
            targets: res.targets,
            undo: serde_json::to_value(undo).expect("undo serializes"),
            irreversible: true,
        })
    }

    /// Kill the prepared pods; with an `interval`, select afresh and kill again every
    /// interval until `deadline`. The engine may drop this future to end the fault early.
    async fn inject(&self, prepared: &Prepared, deadline: SystemTime) -> Result<(), TargetError> {
        let undo: PodKillUndo = parse_undo(KIND, &prepared.undo)?;
        for pod in &undo.pods {
            let deleted = delete_pod(&self.shared, pod, undo.grace_period_seconds).await?;
            tracing::info!(fault = %self.name, pod = %pod.target(), deleted, "pod_kill");
        }
        let Some(ms) = undo.interval_ms else {
            return Ok(());
        };
        let interval = Duration::from_millis(ms);
        loop {
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            if left <= interval {
                // No further round fits before the fault ends; the engine times the rest.
                return Ok(());
            }
            tokio::time::sleep(interval).await;
            let (pods, _) = self.resolve_refs().await?;
            for pod in &pods {
                let deleted = delete_pod(&self.shared, pod, undo.grace_period_seconds).await?;
                tracing::info!(fault = %self.name, pod = %pod.target(), deleted, "pod_kill (repeat)");
            }
        }
    }
}
