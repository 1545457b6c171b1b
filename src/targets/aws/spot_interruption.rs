//! `spot_interruption`: rehearse what EC2 does when it takes spot capacity back.
//!
//! With `method: ec2` (the default, EC2 permissions only), at t0 gameday gives the notice
//! itself: where a Kubernetes target is configured, its [`SpotNoticeHandler`] cordons and
//! drains each instance's Node, as aws-node-termination-handler does on a real notice. When the
//! notice period (120 s by default) has passed since t0, the instances are stopped or
//! terminated through EC2, per the scenario's interruption behaviour. The drains run inside
//! the notice period, as on a real notice: a drain still running when the period ends does not
//! delay the interruption.
//!
//! With `method: fis`, an AWS FIS experiment interrupts the instances, so they get EC2's real
//! notice; the node-termination handler on the cluster is expected to drain (that is what the
//! rehearsal tests), and gameday does not.
//!
//! If anything fails before the interruption (a drain error, throttling, an instance gone),
//! every notice already given is undone (nodes uncordoned) before the error is returned, and
//! the ledger record lets revert do it again, idempotently.
//!
//! [`SpotNoticeHandler`]: super::notice::SpotNoticeHandler

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::AwsError;
use super::spec::{InterruptionBehavior, InterruptionMethod, SpotInterruptionSpec};
use super::{ec2_stop, fis, parse_undo, AwsFault, Inner};
use crate::targets::{Prepared, TargetError};

/// The ledger record of a spot interruption.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpotUndo {
    /// The interrupted instances.
    pub instance_ids: Vec<String>,
    /// How the interruption was delivered (`plan` and the report say which).
    pub method: InterruptionMethod,
    /// Stop (revert starts them) or terminate (irreversible).
    pub behavior: InterruptionBehavior,
    /// The notice period, in milliseconds.
    pub notice_ms: u64,
    /// Per instance, the notice handler's undo record (the Node to uncordon).
    pub notices: Vec<NoticeRecord>,
    /// The FIS objects' tag, with `method: fis`.
    pub fis: Option<FisRecord>,
}

/// One instance's notice, as the handler described it before acting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoticeRecord {
    /// The instance.
    pub instance_id: String,
    /// The handler's undo record.
    pub undo: Value,
}

/// What revert needs to find and stop the FIS experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FisRecord {
    /// Value of the `gameday:token` tag on the template and the experiment.
    pub token: String,
    /// The instance ARNs the experiment targets.
    pub arns: Vec<String>,
    /// The role FIS assumes.
    pub role_arn: String,
}

/// What `plan` says about this fault.
pub fn plan_notes(spec: &SpotInterruptionSpec) -> Vec<String> {
    let method = match spec.method {
        InterruptionMethod::Ec2 => format!(
            "spot_interruption via method: ec2: gameday gives the notice (cordon and drain where a kubernetes target is configured), then {} through ec2 after {}",
            behavior_verb(spec.behavior),
            spec.notice
        ),
        InterruptionMethod::Fis => format!(
            "spot_interruption via method: fis: an aws fis experiment sends the real notice (instance metadata, eventbridge) and interrupts after {}; your node-termination handler is expected to drain",
            spec.notice
        ),
    };
    let mut notes = vec![method];
    if spec.method == InterruptionMethod::Fis || spec.behavior == InterruptionBehavior::Terminate {
        notes.push("IRREVERSIBLE: interrupted instances are terminated and cannot be brought back by revert".to_owned());
    }
    notes
}

/// How the interruption is delivered, in a few words for the journal and report.
pub fn detail(spec: &SpotInterruptionSpec) -> String {
    match spec.method {
        InterruptionMethod::Ec2 => format!(
            "method: ec2, {} notice, then {}",
            spec.notice,
            behavior_verb(spec.behavior)
        ),
        InterruptionMethod::Fis => format!("method: fis, {} notice", spec.notice),
    }
}

fn behavior_verb(b: InterruptionBehavior) -> &'static str {
    match b {
        InterruptionBehavior::Terminate => "terminate",
        InterruptionBehavior::Stop => "stop",
        InterruptionBehavior::Hibernate => "hibernate (stop where not configured for hibernation)",
    }
}

pub(crate) async fn prepare(
    fault: &AwsFault,
    spec: &SpotInterruptionSpec,
) -> Result<Prepared, TargetError> {
    let inner = &fault.inner;
    let notice = spec.notice_duration();
    let (_, _, picked) = inner.pick(&fault.name, &spec.select, true).await?;
    if spec.method == InterruptionMethod::Ec2 && spec.behavior != InterruptionBehavior::Terminate {
        ec2_stop::refuse_unstoppable_spot(inner, &picked).await?;
    }
    let ids: Vec<String> = picked.iter().map(|i| i.id.clone()).collect();
    let mut notices = Vec::new();
    let mut fis_record = None;
    match spec.method {
        InterruptionMethod::Ec2 => {
            if let Some(handler) = &inner.notice {
                let records = handler.prepare_notices(&ids).await.map_err(|source| {
                    TargetError::from(AwsError::Notice {
                        instance_id: ids.join(", "),
                        source,
                    })
                })?;
                notices.extend(
                    records
                        .into_iter()
                        .map(|(instance_id, undo)| NoticeRecord { instance_id, undo }),
                );
            }
        }
        InterruptionMethod::Fis => {
            let region = inner.region.clone().ok_or_else(|| {
                TargetError::Invalid(
                    "method: fis needs a region: set `region` on the aws target or AWS_REGION"
                        .to_owned(),
                )
            })?;
            let arns = picked
                .iter()
                .map(|i| {
                    let account = i.owner_id.as_deref().ok_or_else(|| {
                        TargetError::Invalid(format!(
                            "ec2 reported no owner account for {}: cannot name it to fis",
                            i.id
                        ))
                    })?;
                    Ok(fis::instance_arn(&region, account, &i.id))
                })
                .collect::<Result<Vec<_>, TargetError>>()?;
            fis_record = Some(FisRecord {
                token: fis::new_token(),
                arns,
                role_arn: spec.fis_role_arn.clone().unwrap_or_default(),
            });
        }
    }
    let undo = SpotUndo {
        instance_ids: ids.clone(),
        method: spec.method,
        behavior: spec.behavior,
        notice_ms: u64::try_from(notice.as_millis()).unwrap_or(u64::MAX),
        notices,
        fis: fis_record,
    };
    Ok(Prepared {
        targets: ids,
        undo: serde_json::to_value(undo).expect("undo record serialises"),
        irreversible: spec.method == InterruptionMethod::Fis
            || spec.behavior == InterruptionBehavior::Terminate,
    })
}

pub(crate) async fn inject(
    fault: &AwsFault,
    spec: &SpotInterruptionSpec,
    prepared: &Prepared,
    deadline: SystemTime,
) -> Result<(), TargetError> {
    let undo: SpotUndo = parse_undo("spot_interruption", &prepared.undo)?;
    let inner = &fault.inner;
    inner.still_running(&undo.instance_ids).await?;
    if let Some(record) = &undo.fis {
        let experiment = fis::interrupt(
            &inner.fis,
            fis::Interruption {
                token: &record.token,
                fault: &fault.name,
                arns: record.arns.clone(),
                role_arn: &record.role_arn,
                notice: Duration::from_millis(undo.notice_ms),
            },
            deadline,
        )
        .await?;
        tracing::info!(fault = %fault.name, %experiment, instances = ?undo.instance_ids, "spot interruption delivered by fis");
        return Ok(());
    }
    let result = notice_then_interrupt(fault, spec, &undo).await;
    if let Err(e) = &result {
        // Leave no node cordoned for an interruption that did not happen.
        tracing::warn!(fault = %fault.name, error = %e, "spot interruption failed; undoing the notices");
        if let Err(undo_err) = undo_notices(inner, &undo.notices).await {
            tracing::error!(fault = %fault.name, error = %undo_err, "could not undo every notice; `gameday recover` will retry from the ledger");
        }
    }
    result
}

async fn notice_then_interrupt(
    fault: &AwsFault,
    spec: &SpotInterruptionSpec,
    undo: &SpotUndo,
) -> Result<(), TargetError> {
    let inner = &fault.inner;
    let notice = Duration::from_millis(undo.notice_ms);
    let t0 = tokio::time::Instant::now();
    let interrupt_at = t0 + notice;
    tracing::info!(fault = %fault.name, instances = ?undo.instance_ids, notice_ms = undo.notice_ms, "spot interruption notice");
    if let Some(handler) = &inner.notice {
        for n in &undo.notices {
            match tokio::time::timeout_at(interrupt_at, handler.on_notice(&n.instance_id, &n.undo))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(AwsError::Notice {
                        instance_id: n.instance_id.clone(),
                        source,
                    }
                    .into())
                }
                Err(_) => {
                    // As on a real notice: the interruption does not wait for a slow drain.
                    tracing::warn!(fault = %fault.name, instance = %n.instance_id, "drain still running when the notice period ended; interrupting anyway");
                    break;
                }
            }
        }
    }
    tokio::time::sleep_until(interrupt_at).await;
    inner.still_running(&undo.instance_ids).await?;
    match undo.behavior {
        InterruptionBehavior::Terminate => inner.ec2.terminate(&undo.instance_ids).await?,
        InterruptionBehavior::Stop | InterruptionBehavior::Hibernate => {
            let now = inner.ec2.describe_ids(&undo.instance_ids).await?;
            let instances: Vec<_> = now.into_values().collect();
            let hibernate = ec2_stop::hibernate_all(
                spec.behavior == InterruptionBehavior::Hibernate,
                &instances,
            );
            inner.ec2.stop(&undo.instance_ids, hibernate).await?
        }
    }
    tracing::info!(fault = %fault.name, instances = ?undo.instance_ids, behavior = behavior_verb(undo.behavior), "spot instances interrupted");
    Ok(())
}

/// Undo every notice, trying all of them even when one fails.
async fn undo_notices(inner: &Inner, notices: &[NoticeRecord]) -> Result<(), TargetError> {
    if notices.is_empty() {
        return Ok(());
    }
    let Some(handler) = &inner.notice else {
        let ids: Vec<&str> = notices.iter().map(|n| n.instance_id.as_str()).collect();
        return Err(TargetError::Invalid(format!(
            "the ledger holds spot notices (cordoned nodes) for {} but no kubernetes target is configured to undo them: run `gameday recover` with the scenario that configures it",
            ids.join(", ")
        )));
    };
    let mut first_error = None;
    for n in notices {
        if let Err(source) = handler.undo(&n.undo).await {
            tracing::error!(instance = %n.instance_id, error = %format!("{source:#}"), "could not undo a spot notice");
            first_error.get_or_insert(AwsError::Notice {
                instance_id: n.instance_id.clone(),
                source,
            });
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Undo a spot interruption from its ledger record: start stopped instances (as EC2 does
/// when capacity is back), then undo the notices; with FIS, stop the experiment if it still
/// runs. Terminated instances stay terminated. Idempotent.
pub(crate) async fn revert(inner: &Inner, undo: &Value) -> Result<(), TargetError> {
    let undo: SpotUndo = parse_undo("spot_interruption", undo)?;
    let mut first_error: Option<TargetError> = None;
    if let Some(record) = &undo.fis {
        if let Err(e) = fis::revert(&inner.fis, &record.token).await {
            first_error.get_or_insert(e.into());
        }
    }
    if undo.fis.is_none() && undo.behavior != InterruptionBehavior::Terminate {
        match inner.ec2.start_stopped(&undo.instance_ids).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::warn!(instances = ?gone, "interrupted instances are gone and cannot be started again")
            }
            Ok(_) => {}
            Err(e) => {
                first_error.get_or_insert(e.into());
            }
        }
    }
    // Always, even after an error above: no node may stay cordoned.
    if let Err(e) = undo_notices(inner, &undo.notices).await {
        first_error.get_or_insert(e);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
