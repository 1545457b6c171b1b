//! The cluster's side of an AWS spot interruption: at the notice, find the instance's Node
//! through `spec.providerID` (`aws:///us-east-1a/i-0abc...`), cordon it and evict its pods
//! (PodDisruptionBudgets honoured), which is what aws-node-termination-handler does on a real
//! notice; on revert, uncordon it. The drain itself is `node_drain`'s, so both faults evict
//! the same way and leave the same ledger record.
//!
//! After a *termination* the Node is left cordoned: its instance is gone, and in a real
//! cluster the cloud controller deletes the Node; uncordoning it would invite pods onto a
//! machine that no longer exists. Any other way out (a stop that is reverted, an error, an
//! abort during the notice, `gameday recover`) uncordons.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::Api;
use serde_json::Value;

use super::client::{list_all, op_err};
use super::node_drain::{self, pods_to_evict, DrainedNode, NodeDrainUndo};
use super::{parse_undo, Shared};
use crate::targets::aws::notice::SpotNoticeHandler;
use crate::targets::aws::select::instance_id_from_provider_id;

/// How long evictions refused by a disruption budget are retried. The AWS side cuts the
/// drain off when the notice period ends anyway, as EC2 does not wait for a slow drain.
const EVICTION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Cordon and drain the Node of an interrupted instance.
pub struct SpotNoticeDrain {
    shared: Arc<Shared>,
}

impl SpotNoticeDrain {
    /// For the cluster behind `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Every Node of the cluster, listed once per fault however many instances it hits.
    async fn nodes(&self) -> anyhow::Result<Vec<Node>> {
        let api: Api<Node> = Api::all(self.shared.client().await?);
        Ok(list_all(&api, &ListParams::default())
            .await
            .map_err(|e| op_err("list nodes", "all", e))?)
    }
}

/// The Node among `nodes` whose `spec.providerID` names `instance_id`, if any.
fn node_of<'a>(nodes: &'a [Node], instance_id: &str) -> Option<&'a Node> {
    nodes.iter().find(|n| {
        n.spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .and_then(instance_id_from_provider_id)
            == Some(instance_id)
    })
}

#[async_trait]
impl SpotNoticeHandler for SpotNoticeDrain {
    async fn prepare_notices(
        &self,
        instance_ids: &[String],
    ) -> anyhow::Result<Vec<(String, Value)>> {
        let nodes = self.nodes().await?;
        let mut records = Vec::new();
        for instance_id in instance_ids {
            let Some(node) = node_of(&nodes, instance_id) else {
                tracing::info!(instance = %instance_id, "no node of the cluster runs on this instance; nothing to drain");
                continue;
            };
            let name = node.metadata.name.clone().unwrap_or_default();
            let was_unschedulable = node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false);
            let pods = pods_to_evict(&self.shared, &name).await?;
            let undo = NodeDrainUndo {
                nodes: vec![DrainedNode {
                    name,
                    was_unschedulable,
                }],
                pods,
                eviction_timeout_ms: EVICTION_TIMEOUT.as_millis() as u64,
                grace_period_seconds: None,
            };
            records.push((instance_id.clone(), serde_json::to_value(undo)?));
        }
        Ok(records)
    }

    async fn on_notice(&self, instance_id: &str, undo: &Value) -> anyhow::Result<()> {
        let undo: NodeDrainUndo = parse_undo(node_drain::KIND, undo)?;
        let cause = format!("spot notice for {instance_id}");
        node_drain::drain(&self.shared, &cause, &undo).await?;
        Ok(())
    }

    async fn undo(&self, undo: &Value) -> anyhow::Result<()> {
        node_drain::revert(&self.shared, undo).await?;
        Ok(())
    }
}
