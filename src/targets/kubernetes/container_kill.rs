//! `container_kill`: signal the main process of containers in selected pods, so that the
//! container exits and the kubelet restarts it (restartCount goes up), without deleting
//! the pod. An ephemeral container with `targetContainerName` shares that container's
//! process namespace and runs `kill -s SIGNAL 1`. Irreversible: a restarted container
//! cannot be un-restarted.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde::{Deserialize, Serialize};

use super::client::{is_not_found, op_err};
use super::ephemeral;
use super::network_latency::instance_name;
use super::pods::{resolve_pods, PodRef};
use super::spec::ContainerKillSpec;
use super::{parse_undo, Shared};
use crate::targets::{Fault, Prepared, Resolution, TargetError};

/// The kind as written in scenarios.
pub const KIND: &str = "container_kill";

/// The ledger record: what was signalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerKillUndo {
    /// Pods hit.
    pub pods: Vec<PodRef>,
    /// Containers signalled in each pod (empty: the first container of each pod).
    pub containers: Vec<String>,
    /// Prefix of the ephemeral containers' names.
    pub container: String,
    /// The signal, as `kill -s` names it (`TERM`).
    pub signal: String,
    /// Image of the ephemeral containers.
    pub image: String,
}

/// A bound `container_kill` fault.
pub struct ContainerKill {
    shared: Arc<Shared>,
    name: String,
    spec: ContainerKillSpec,
}

/// The script: signal PID 1 of the shared namespace. If the process exits, its namespace
/// goes with it and this container is killed too; if it is still here after a while, the
/// process ignored the signal, which the container's exit code (1) records.
pub fn kill_script(signal: &str) -> String {
    format!(
        "kill -s {signal} 1 || exit 1\nsleep 30\necho 'pid 1 survived SIG{signal}' >&2\nexit 1\n"
    )
}

impl ContainerKill {
    /// Bind the spec to a target.
    pub fn new(shared: Arc<Shared>, name: String, spec: ContainerKillSpec) -> Self {
        Self { shared, name, spec }
    }
}

#[async_trait]
impl Fault for ContainerKill {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        let s = &self.spec;
        Ok(resolve_pods(
            &self.shared,
            &self.name,
            &s.selector,
            s.mode,
            s.value,
            s.max_targets,
        )
        .await?
        .1)
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        let s = &self.spec;
        s.validate()
            .map_err(|e| TargetError::Invalid(format!("fault {}: {e}", self.name)))?;
        let (pods, res) = resolve_pods(
            &self.shared,
            &self.name,
            &s.selector,
            s.mode,
            s.value,
            s.max_targets,
        )
        .await?;
        let undo = ContainerKillUndo {
            pods,
            containers: s.container_names.clone(),
            container: instance_name("gameday-kill"),
            signal: s.signal.kill_name().to_string(),
            image: s.image.clone(),
        };
        Ok(Prepared {
            targets: res.targets,
            undo: serde_json::to_value(undo).expect("undo serializes"),
            irreversible: true,
        })
    }

    async fn inject(&self, prepared: &Prepared, _deadline: SystemTime) -> Result<(), TargetError> {
        let undo: ContainerKillUndo = parse_undo(KIND, &prepared.undo)?;
        ephemeral::ensure_supported(&self.shared).await?;
        for pod in &undo.pods {
            let containers = if undo.containers.is_empty() {
                let api: Api<Pod> = Api::namespaced(self.shared.client().await?, &pod.namespace);
                match api.get(&pod.name).await {
                    Ok(p) => p
                        .spec
                        .and_then(|s| s.containers.first().map(|c| c.name.clone()))
                        .into_iter()
                        .collect(),
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => {
                        return Err(op_err(
                            "get pod",
                            format!("{}/{}", pod.namespace, pod.name),
                            e,
                        ))
                    }
                }
            } else {
                undo.containers.clone()
            };
            for (i, c) in containers.iter().enumerate() {
                let ec = ephemeral::container(
                    &format!("{}-{i}", undo.container),
                    &undo.image,
                    kill_script(&undo.signal),
                    &[],
                    Some(c),
                );
                let added = ephemeral::add(&self.shared, pod, ec, None).await?;
                tracing::info!(fault = %self.name, pod = %pod.target(), container = %c, ?added, "container_kill");
            }
        }
        Ok(())
    }
}
