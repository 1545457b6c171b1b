//! `ec2_reboot`: reboot instances. A reboot ends by itself, so the ledger record has nothing
//! to undo; it is still written first, so the report knows what was hit.

use serde::{Deserialize, Serialize};

use super::spec::Ec2RebootSpec;
use super::{parse_undo, AwsFault};
use crate::targets::{Prepared, TargetError};

/// Said by `plan`.
pub const PLAN_NOTE: &str = "ec2_reboot: nothing to revert, a reboot ends by itself";

/// The ledger record of a reboot: what was rebooted, for the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RebootRecord {
    /// Instances rebooted.
    pub instance_ids: Vec<String>,
}

pub(crate) async fn prepare(
    fault: &AwsFault,
    spec: &Ec2RebootSpec,
) -> Result<Prepared, TargetError> {
    let (_, _, picked) = fault.inner.pick(&fault.name, &spec.select, false).await?;
    let ids: Vec<String> = picked.into_iter().map(|i| i.id).collect();
    Ok(Prepared {
        targets: ids.clone(),
        undo: serde_json::to_value(RebootRecord { instance_ids: ids })
            .expect("undo record serialises"),
        irreversible: false,
    })
}

pub(crate) async fn inject(fault: &AwsFault, prepared: &Prepared) -> Result<(), TargetError> {
    let record: RebootRecord = parse_undo("ec2_reboot", &prepared.undo)?;
    fault.inner.still_running(&record.instance_ids).await?;
    fault.inner.ec2.reboot(&record.instance_ids).await?;
    tracing::info!(fault = %fault.name, instances = ?record.instance_ids, "rebooted instances");
    Ok(())
}
