//! `ec2_terminate`: terminate instances, for DR drills with real loss. It cannot be reverted,
//! so the scenario must say `acknowledge_irreversible: true` (checked by `validate`), `plan`
//! says so, and the ledger record is marked irreversible.

use serde::{Deserialize, Serialize};

use super::spec::Ec2TerminateSpec;
use super::{parse_undo, AwsFault};
use crate::targets::{Prepared, TargetError};

/// Said by `plan`.
pub const PLAN_NOTE: &str =
    "ec2_terminate: IRREVERSIBLE, terminated instances cannot be brought back by revert";

/// The ledger record of a termination: what was terminated, for the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TerminateRecord {
    /// Instances terminated.
    pub instance_ids: Vec<String>,
}

pub(crate) async fn prepare(
    fault: &AwsFault,
    spec: &Ec2TerminateSpec,
) -> Result<Prepared, TargetError> {
    let (_, _, picked) = fault.inner.pick(&fault.name, &spec.select, false).await?;
    let ids: Vec<String> = picked.into_iter().map(|i| i.id).collect();
    Ok(Prepared {
        targets: ids.clone(),
        undo: serde_json::to_value(TerminateRecord { instance_ids: ids })
            .expect("undo record serialises"),
        irreversible: true,
    })
}

pub(crate) async fn inject(fault: &AwsFault, prepared: &Prepared) -> Result<(), TargetError> {
    let record: TerminateRecord = parse_undo("ec2_terminate", &prepared.undo)?;
    fault.inner.still_running(&record.instance_ids).await?;
    fault.inner.ec2.terminate(&record.instance_ids).await?;
    tracing::warn!(fault = %fault.name, instances = ?record.instance_ids, "terminated instances (irreversible)");
    Ok(())
}
