//! AWS FIS for `spot_interruption` with `method: fis`: a one-off experiment whose single
//! action is `aws:ec2:send-spot-instance-interruptions`, so that the instance receives the real
//! notice (instance metadata, EventBridge) that node-termination handlers react to.
//!
//! The experiment template and the experiment are made during `inject`, after the ledger
//! write, so their ids cannot be in the ledger. Instead `prepare` draws a token that both are
//! tagged with (`gameday:token`), and revert finds them by that tag alone: it stops a running
//! experiment (before the interruption, that cancels it) and deletes the template.

use std::time::{Duration, SystemTime};

use aws_sdk_fis::types::{
    CreateExperimentTemplateActionInput, CreateExperimentTemplateStopConditionInput,
    CreateExperimentTemplateTargetInput, ExperimentStatus,
};
use aws_sdk_fis::Client;
use rand::Rng;

use super::error::AwsError;

/// The tag that ties a template and its experiment to a ledger record.
pub const TOKEN_TAG: &str = "gameday:token";
const ACTION_ID: &str = "aws:ec2:send-spot-instance-interruptions";
const TARGET: &str = "SpotInstances";
/// How often `inject` asks FIS how the experiment is doing.
const POLL: Duration = Duration::from_secs(5);

/// A fresh token for one fault's FIS objects (also their idempotency token).
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ARN of an instance, which FIS targets name resources by.
pub fn instance_arn(region: &str, account: &str, instance_id: &str) -> String {
    let partition = if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    format!("arn:{partition}:ec2:{region}:{account}:instance/{instance_id}")
}

/// ISO-8601 duration as FIS wants it (`PT2M`).
pub fn iso_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs % 60 == 0 {
        format!("PT{}M", secs / 60)
    } else {
        format!("PT{secs}S")
    }
}

fn fis_err<E>(operation: &'static str, object: &str, e: aws_sdk_fis::error::SdkError<E>) -> AwsError
where
    E: aws_sdk_fis::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    AwsError::from_sdk(operation, object, e)
}

/// What one FIS interruption needs.
pub struct Interruption<'a> {
    /// Token from the ledger record.
    pub token: &'a str,
    /// The fault's name, for the template's description.
    pub fault: &'a str,
    /// Instance ARNs to interrupt.
    pub arns: Vec<String>,
    /// Role FIS assumes.
    pub role_arn: &'a str,
    /// The notice period.
    pub notice: Duration,
}

/// Create the template, start the experiment and wait until it ends (or `deadline`), then
/// delete the template. Returns the experiment id.
pub async fn interrupt(
    client: &Client,
    run: Interruption<'_>,
    deadline: SystemTime,
) -> Result<String, AwsError> {
    let object = run.arns.join(",");
    let target = CreateExperimentTemplateTargetInput::builder()
        .resource_type("aws:ec2:spot-instance")
        .set_resource_arns(Some(run.arns.clone()))
        .selection_mode("ALL")
        .build()
        .expect("target has its required fields");
    let action = CreateExperimentTemplateActionInput::builder()
        .action_id(ACTION_ID)
        .parameters("durationBeforeInterruption", iso_duration(run.notice))
        .targets(TARGET, TARGET)
        .build()
        .expect("action has its required fields");
    let stop = CreateExperimentTemplateStopConditionInput::builder()
        .source("none")
        .build()
        .expect("stop condition has its required fields");
    let template = client
        .create_experiment_template()
        .client_token(run.token)
        .description(format!("gameday fault {}: spot interruption", run.fault))
        .role_arn(run.role_arn)
        .targets(TARGET, target)
        .actions("interrupt", action)
        .stop_conditions(stop)
        .tags(TOKEN_TAG, run.token)
        .send()
        .await
        .map_err(|e| fis_err("CreateExperimentTemplate", &object, e))?;
    let template_id = template
        .experiment_template()
        .and_then(|t| t.id())
        .ok_or_else(|| AwsError::Api {
            operation: "CreateExperimentTemplate",
            object: object.clone(),
            detail: "fis returned no template id".to_owned(),
        })?
        .to_owned();
    let started = client
        .start_experiment()
        .client_token(run.token)
        .experiment_template_id(&template_id)
        .tags(TOKEN_TAG, run.token)
        .send()
        .await
        .map_err(|e| fis_err("StartExperiment", &object, e))?;
    let experiment_id = started
        .experiment()
        .and_then(|x| x.id())
        .ok_or_else(|| AwsError::Api {
            operation: "StartExperiment",
            object: object.clone(),
            detail: "fis returned no experiment id".to_owned(),
        })?
        .to_owned();
    tracing::info!(fault = %run.fault, experiment = %experiment_id, "fis experiment started");
    let outcome = wait(client, &experiment_id, &object, deadline).await;
    // The template was made for this one experiment; the experiment keeps its own record.
    if let Err(e) = client
        .delete_experiment_template()
        .id(&template_id)
        .send()
        .await
    {
        tracing::warn!(template = %template_id, error = %aws_sdk_fis::error::DisplayErrorContext(&e), "could not delete the fis experiment template");
    }
    outcome.map(|()| experiment_id)
}

async fn wait(
    client: &Client,
    experiment_id: &str,
    object: &str,
    deadline: SystemTime,
) -> Result<(), AwsError> {
    loop {
        let got = client
            .get_experiment()
            .id(experiment_id)
            .send()
            .await
            .map_err(|e| fis_err("GetExperiment", object, e))?;
        let state = got.experiment().and_then(|x| x.state());
        let status = state.and_then(|s| s.status());
        match status {
            Some(ExperimentStatus::Completed) => return Ok(()),
            Some(
                ExperimentStatus::Failed | ExperimentStatus::Stopped | ExperimentStatus::Cancelled,
            ) => {
                return Err(AwsError::Api {
                    operation: "GetExperiment",
                    object: object.to_owned(),
                    detail: format!(
                        "fis experiment {experiment_id} ended {}: {}",
                        status.map(|s| s.as_str()).unwrap_or("?"),
                        state.and_then(|s| s.reason()).unwrap_or("no reason given")
                    ),
                })
            }
            _ => {}
        }
        if SystemTime::now() >= deadline {
            return Err(AwsError::Api {
                operation: "GetExperiment",
                object: object.to_owned(),
                detail: format!("fis experiment {experiment_id} had not finished by the fault's deadline; revert stops it"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Stop every unfinished experiment tagged with `token` and delete its templates. Idempotent:
/// nothing tagged, nothing to do.
pub async fn revert(client: &Client, token: &str) -> Result<(), AwsError> {
    let mut experiments = client.list_experiments().into_paginator().send();
    while let Some(page) = experiments.next().await {
        let page = page.map_err(|e| fis_err("ListExperiments", token, e))?;
        for x in page.experiments() {
            if x.tags().and_then(|t| t.get(TOKEN_TAG)).map(String::as_str) != Some(token) {
                continue;
            }
            let running = matches!(
                x.state().and_then(|s| s.status()),
                Some(
                    ExperimentStatus::Pending
                        | ExperimentStatus::Initiating
                        | ExperimentStatus::Running
                )
            );
            if let (true, Some(id)) = (running, x.id()) {
                client
                    .stop_experiment()
                    .id(id)
                    .send()
                    .await
                    .map_err(|e| fis_err("StopExperiment", id, e))?;
                tracing::info!(experiment = %id, "fis experiment stopped");
            }
        }
    }
    let mut templates = client.list_experiment_templates().into_paginator().send();
    while let Some(page) = templates.next().await {
        let page = page.map_err(|e| fis_err("ListExperimentTemplates", token, e))?;
        for t in page.experiment_templates() {
            if t.tags().and_then(|t| t.get(TOKEN_TAG)).map(String::as_str) != Some(token) {
                continue;
            }
            if let Some(id) = t.id() {
                client
                    .delete_experiment_template()
                    .id(id)
                    .send()
                    .await
                    .map_err(|e| fis_err("DeleteExperimentTemplate", id, e))?;
            }
        }
    }
    Ok(())
}

/// A read-only FIS call for `plan`: FIS has no DryRun, but listing templates proves the
/// endpoint answers and the caller may use FIS at all.
pub async fn probe(client: &Client) -> Result<(), AwsError> {
    client
        .list_experiment_templates()
        .max_results(1)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fis_err("ListExperimentTemplates", "*", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_durations_are_what_fis_expects() {
        assert_eq!(
            instance_arn("us-east-1", "123456789012", "i-0abc"),
            "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"
        );
        assert!(instance_arn("cn-north-1", "1", "i-1").starts_with("arn:aws-cn:"));
        assert_eq!(iso_duration(Duration::from_secs(120)), "PT2M");
        assert_eq!(iso_duration(Duration::from_secs(150)), "PT150S");
        assert_eq!(new_token().len(), 32);
    }
}
