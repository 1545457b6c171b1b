//! The seam between a spot interruption and whatever runs on the instance: at the notice, the
//! Kubernetes target (when configured) cordons and drains the instance's Node the way
//! aws-node-termination-handler does on a real notice; on revert it uncordons it.
//!
//! The AWS target does not depend on the Kubernetes target: it only knows this trait, which
//! the Kubernetes target implements and the engine plugs in with
//! [`super::AwsTarget::with_notice_handler`] when a scenario configures both.
//!
//! The contract follows the fault life cycle: [`SpotNoticeHandler::prepare_notices`] is
//! read-only and returns the undo records that go into the ledger *before* anything is
//! cordoned; [`SpotNoticeHandler::on_notice`] acts; [`SpotNoticeHandler::undo`] reverts from
//! that record alone and is idempotent (a Node that is gone, or already schedulable, is fine).

use async_trait::async_trait;
use serde_json::Value;

/// Reacts to a spot interruption notice for one instance.
#[async_trait]
pub trait SpotNoticeHandler: Send + Sync {
    /// Read-only: find what the notice will touch for each of `instance_ids` (its Node,
    /// through `spec.providerID`; see [`super::select::instance_id_from_provider_id`]) and
    /// return the record that undoes it, by instance; an instance that runs no Node is left
    /// out. One call per fault, so the cluster is read once however many instances it hits.
    async fn prepare_notices(
        &self,
        instance_ids: &[String],
    ) -> anyhow::Result<Vec<(String, Value)>>;

    /// The notice itself: cordon and drain the Node described by `undo` (as returned by
    /// [`SpotNoticeHandler::prepare_notices`]). Returns when the drain has finished or given up.
    async fn on_notice(&self, instance_id: &str, undo: &Value) -> anyhow::Result<()>;

    /// Undo a notice from its record alone (uncordon), idempotently.
    async fn undo(&self, undo: &Value) -> anyhow::Result<()>;
}
