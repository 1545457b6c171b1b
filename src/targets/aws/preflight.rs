//! The read-only check of `plan` (and of `run` before anything is injected): resolve each
//! fault's instances, then make every EC2 call the run will make with `DryRun=true` on them,
//! so a missing IAM permission shows before the gameday starts, not halfway through it
//! (least privilege, rule S-5). EC2 answers `DryRunOperation` when the call would succeed and
//! `UnauthorizedOperation` when not; moto answers `AccessDenied` (HTTP 403) for the latter, and
//! both count as a missing permission.
//!
//! It also reports what gameday itself would refuse at run time (stopping a one-time spot
//! instance), irreversible faults, and which spot interruption method is used.

use super::ec2::Call;
use super::error::AwsError;
use super::spec::{AwsFaultSpec, InterruptionBehavior, InterruptionMethod};
use super::{ec2_stop, fis, select, AwsTarget};
use crate::targets::{Fault, Finding, Severity, TargetError};

fn error(message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        message,
    }
}

fn warning(message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        message,
    }
}

/// The EC2 calls a fault will make, in order. `any_spot`: the selection holds spot instances
/// (stopping them needs their spot request's type).
pub fn calls(spec: &AwsFaultSpec, any_spot: bool) -> Vec<Call> {
    let mut calls = vec![Call::DescribeInstances];
    match spec {
        AwsFaultSpec::SpotInterruption(s) => match (s.method, s.behavior) {
            (InterruptionMethod::Fis, _) => {}
            (InterruptionMethod::Ec2, InterruptionBehavior::Terminate) => {
                calls.push(Call::TerminateInstances)
            }
            (InterruptionMethod::Ec2, _) => calls.extend([
                Call::DescribeSpotInstanceRequests,
                Call::StopInstances,
                Call::StartInstances,
            ]),
        },
        AwsFaultSpec::Ec2Stop(_) => {
            if any_spot {
                calls.push(Call::DescribeSpotInstanceRequests);
            }
            calls.extend([Call::StopInstances, Call::StartInstances]);
        }
        AwsFaultSpec::Ec2Reboot(_) => calls.push(Call::RebootInstances),
        AwsFaultSpec::Ec2Terminate(_) => calls.push(Call::TerminateInstances),
    }
    calls
}

fn permission_finding(fault: &str, e: AwsError) -> Finding {
    match e {
        AwsError::Denied {
            operation,
            object,
            code,
        } => error(format!(
            "fault {fault}: missing permission ec2:{operation} on {object} (ec2 answered {code}): grant it to the role gameday runs as"
        )),
        other => error(format!("fault {fault}: {other}")),
    }
}

pub(crate) async fn run(
    target: &AwsTarget,
    faults: &[&dyn Fault],
) -> Result<Vec<Finding>, TargetError> {
    let inner = &target.inner;
    let mut findings = Vec::new();
    if inner.config.allowed_account_ids.is_empty() && !faults.is_empty() {
        let finding = if inner.any_account { warning } else { error };
        findings.push(finding(
            "the scenario names no AWS account: instances of whatever account the credentials reach could be hit; list it in target.aws.allowed_account_ids, or pass --yes".to_owned(),
        ));
    }
    match inner.ec2.dry_run(Call::DescribeInstances, &[]).await {
        Ok(()) => {}
        Err(e @ AwsError::Unreachable { .. }) => return Err(e.into()),
        Err(e) => {
            findings.push(permission_finding("(all)", e));
            // Nothing can be resolved without DescribeInstances.
            return Ok(findings);
        }
    }
    for fault in faults {
        let Some(own) = target.own_fault(*fault) else {
            findings.push(warning(format!(
                "a {} fault handed to the aws target was not made by it; its permissions were not checked",
                fault.kind()
            )));
            continue;
        };
        let name = own.name();
        let spot_only = matches!(own.spec(), AwsFaultSpec::SpotInterruption(_));
        let eligible = match inner.eligible(name, own.spec().selector(), spot_only).await {
            Ok((eligible, _)) => eligible,
            Err(e) => {
                findings.push(error(e.to_string()));
                continue;
            }
        };
        let ids: Vec<String> = eligible.iter().map(|i| i.id.clone()).collect();
        let any_spot = eligible.iter().any(|i| i.spot);
        for call in calls(own.spec(), any_spot) {
            if call == Call::DescribeInstances {
                continue; // checked once above
            }
            let on: &[String] = if call.takes_ids() { &ids } else { &[] };
            if let Err(e) = inner.ec2.dry_run(call, on).await {
                if matches!(e, AwsError::Unreachable { .. }) {
                    return Err(e.into());
                }
                findings.push(permission_finding(name, e));
            }
        }
        let stops = match own.spec() {
            AwsFaultSpec::Ec2Stop(_) => true,
            AwsFaultSpec::SpotInterruption(s) => {
                s.method == InterruptionMethod::Ec2 && s.behavior != InterruptionBehavior::Terminate
            }
            _ => false,
        };
        if stops {
            if let Err(e) = ec2_stop::refuse_unstoppable_spot(inner, &eligible).await {
                findings.push(error(format!("fault {name}: {e}")));
            }
        }
        if own.spec().irreversible() {
            let sel = own.spec().selector();
            let n = select::wanted(sel, ids.len()).min(ids.len());
            let n = sel.max_targets.map_or(n, |cap| n.min(cap));
            findings.push(warning(format!(
                "fault {name} ({}) is irreversible: the {n} instance(s) it hits are terminated and revert cannot bring them back",
                own.spec().kind(),
            )));
        }
        if let AwsFaultSpec::SpotInterruption(s) = own.spec() {
            match s.method {
                InterruptionMethod::Fis => {
                    findings.push(warning(format!(
                        "fault {name}: method: fis; fis has no DryRun, so only access to fis was checked: the role gameday runs as also needs fis:CreateExperimentTemplate, fis:StartExperiment, fis:GetExperiment, fis:StopExperiment, fis:ListExperiments, fis:DeleteExperimentTemplate, fis:TagResource and iam:PassRole on {}",
                        s.fis_role_arn.as_deref().unwrap_or("the fis role")
                    )));
                    if let Err(e) = fis::probe(&inner.fis).await {
                        findings.push(error(format!("fault {name}: {e}")));
                    }
                }
                InterruptionMethod::Ec2 => {
                    if inner.notice.is_none() {
                        findings.push(warning(format!(
                            "fault {name}: method: ec2 without a kubernetes target: no node is cordoned or drained at the notice, the instances are just {} after {}",
                            if s.behavior == InterruptionBehavior::Terminate { "terminated" } else { "stopped" },
                            s.notice
                        )));
                    }
                }
            }
        }
    }
    Ok(findings)
}
