//! `ec2_stop`: stop instances, as when a zone loses its machines in a DR drill. Revert starts
//! again exactly the instances the ledger says were stopped, and only if they are stopped.
//!
//! EC2 refuses to stop a spot instance that does not come from a persistent spot request;
//! moto accepts it, so gameday refuses it itself, at `plan` and again before acting.

use serde::{Deserialize, Serialize};

use super::error::AwsError;
use super::select::InstanceInfo;
use super::spec::Ec2StopSpec;
use super::{parse_undo, AwsFault, Inner};
use crate::targets::{Prepared, TargetError};

/// Said by `plan`.
pub const PLAN_NOTE: &str = "ec2_stop: revert starts the stopped instances again";

/// The ledger record of a stop: the instances to start again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StopUndo {
    /// Instances that were (to be) stopped.
    pub instance_ids: Vec<String>,
}

/// Refuse spot instances EC2 would refuse to stop (one-time requests, or none reported).
pub(crate) async fn refuse_unstoppable_spot(
    inner: &Inner,
    instances: &[InstanceInfo],
) -> Result<(), AwsError> {
    let spot: Vec<String> = instances
        .iter()
        .filter(|i| i.spot)
        .map(|i| i.id.clone())
        .collect();
    if spot.is_empty() {
        return Ok(());
    }
    let types = inner.ec2.spot_request_types(&spot).await?;
    for id in spot {
        match types.get(&id) {
            Some(super::ec2::SpotRequestType::Persistent) => {}
            Some(super::ec2::SpotRequestType::OneTime) => {
                return Err(AwsError::SpotNotStoppable {
                    instance_id: id,
                    why: "is one-time".to_owned(),
                })
            }
            None => {
                return Err(AwsError::SpotNotStoppable {
                    instance_id: id,
                    why: "has no active spot request that ec2 reports (one-time is the default)"
                        .to_owned(),
                })
            }
        }
    }
    Ok(())
}

/// Hibernate only where the instance was launched for it: EC2 refuses hibernation otherwise.
pub(crate) fn hibernate_all(wanted: bool, instances: &[InstanceInfo]) -> bool {
    wanted && !instances.is_empty() && instances.iter().all(|i| i.hibernation_configured)
}

pub(crate) async fn prepare(fault: &AwsFault, spec: &Ec2StopSpec) -> Result<Prepared, TargetError> {
    let (_, _, picked) = fault.inner.pick(&fault.name, &spec.select, false).await?;
    refuse_unstoppable_spot(&fault.inner, &picked).await?;
    let ids: Vec<String> = picked.into_iter().map(|i| i.id).collect();
    Ok(Prepared {
        targets: ids.clone(),
        undo: serde_json::to_value(StopUndo { instance_ids: ids }).expect("undo record serialises"),
        irreversible: false,
    })
}

pub(crate) async fn inject(
    fault: &AwsFault,
    spec: &Ec2StopSpec,
    prepared: &Prepared,
) -> Result<(), TargetError> {
    let undo: StopUndo = parse_undo("ec2_stop", &prepared.undo)?;
    let ids = &undo.instance_ids;
    fault.inner.still_running(ids).await?;
    let now = fault.inner.ec2.describe_ids(ids).await?;
    let instances: Vec<InstanceInfo> = now.into_values().collect();
    fault
        .inner
        .ec2
        .stop(ids, hibernate_all(spec.hibernate, &instances))
        .await?;
    tracing::info!(fault = %fault.name, instances = ?ids, "stopped instances");
    Ok(())
}

pub(crate) async fn revert(inner: &Inner, undo: &serde_json::Value) -> Result<(), TargetError> {
    let undo: StopUndo = parse_undo("ec2_stop", undo)?;
    let gone = inner.ec2.start_stopped(&undo.instance_ids).await?;
    if !gone.is_empty() {
        tracing::warn!(instances = ?gone, "stopped instances are gone (terminated) and cannot be started again");
    }
    Ok(())
}
