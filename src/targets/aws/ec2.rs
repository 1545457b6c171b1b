//! The EC2 calls gameday makes, each in one place with its error mapping, and each able to run
//! as a `DryRun` so that `plan` checks the very calls `run` will make (least privilege, S-5).
//!
//! Instances are looked up by the `instance-id` *filter*, never the `InstanceIds` parameter:
//! EC2 fails the whole call with `InvalidInstanceID.NotFound` when one id is gone, while a filter
//! simply leaves it out, which lets gameday say which instance vanished.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Instance, InstanceLifecycleType, SpotInstanceType};
use aws_sdk_ec2::Client;

use super::error::{classify, ApiFault, AwsError};
use super::select::InstanceInfo;
use super::spec::InstanceSelector;

/// How long a revert waits for a `stopping` instance to reach `stopped` before starting it.
/// EC2 usually needs well under a minute; past five, something else is wrong and the operator
/// should look.
const STOPPED_WAIT: Duration = Duration::from_secs(300);
const STOPPED_POLL: Duration = Duration::from_secs(1);

/// A spot request's type, which decides whether EC2 lets its instance be stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpotRequestType {
    /// Stoppable.
    Persistent,
    /// Not stoppable (the default of RunInstances with spot market options).
    OneTime,
}

/// The EC2 client of the target.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
}

fn join(ids: &[String]) -> String {
    ids.join(",")
}

fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

fn info(instance: &Instance, owner: Option<&str>) -> Option<InstanceInfo> {
    Some(InstanceInfo {
        id: instance.instance_id()?.to_owned(),
        state: instance
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        spot: instance.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
        availability_zone: instance
            .placement()
            .and_then(|p| p.availability_zone())
            .map(str::to_owned),
        owner_id: owner.map(str::to_owned),
        tags: instance
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
            .collect::<BTreeMap<_, _>>(),
        hibernation_configured: instance
            .hibernation_options()
            .and_then(|h| h.configured())
            .unwrap_or(false),
        spot_request_id: instance.spot_instance_request_id().map(str::to_owned),
    })
}

/// Turn the result of a `DryRun` call into "allowed" or the error that says why not.
fn dry_run<T, E>(
    operation: &'static str,
    object: &str,
    result: Result<T, aws_sdk_ec2::error::SdkError<E>>,
) -> Result<(), AwsError>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        // An endpoint that ignored DryRun and acted: nothing to do about it now, but it did
        // answer, so the permission is there.
        Ok(_) => Ok(()),
        Err(e) if classify(&e) == ApiFault::DryRunOk => Ok(()),
        Err(e) => Err(AwsError::from_sdk(operation, object, e)),
    }
}

impl Ec2 {
    /// Wrap an SDK client.
    pub fn new(client: Client) -> Self {
        Ec2 { client }
    }

    /// Instances that exist (running, or out of service: see [`super::select::is_out`])
    /// matching the server-side part of `sel` (tags, ids). The lifecycle and a re-check of
    /// everything are left to [`super::select::matches`]; the ones out of service count
    /// against the cap.
    pub async fn describe_selected(
        &self,
        sel: &InstanceSelector,
    ) -> Result<Vec<InstanceInfo>, AwsError> {
        let mut filters = vec![filter(
            "instance-state-name",
            ["pending", "running", "stopping", "stopped"],
        )];
        for (k, v) in &sel.tags {
            filters.push(filter(&format!("tag:{k}"), [v.clone()]));
        }
        // No `availability-zone` filter: moto ignores the zone an instance was placed in and
        // matches nothing; the zone is checked on each result by `select::matches` instead.
        if !sel.instance_ids.is_empty() {
            filters.push(filter("instance-id", sel.instance_ids.clone()));
        }
        self.describe(filters, "selector").await
    }

    /// The current state of `ids`; ids EC2 no longer knows are absent from the map.
    pub async fn describe_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, InstanceInfo>, AwsError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self
            .describe(vec![filter("instance-id", ids.to_vec())], &join(ids))
            .await?;
        Ok(found.into_iter().map(|i| (i.id.clone(), i)).collect())
    }

    async fn describe(
        &self,
        filters: Vec<Filter>,
        object: &str,
    ) -> Result<Vec<InstanceInfo>, AwsError> {
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("DescribeInstances", object, e))?;
            for reservation in page.reservations() {
                out.extend(
                    reservation
                        .instances()
                        .iter()
                        .filter_map(|i| info(i, reservation.owner_id())),
                );
            }
        }
        Ok(out)
    }

    /// The cheapest call that proves the endpoint answers (for `check_reachable`).
    pub async fn ping(&self) -> Result<(), AwsError> {
        self.client
            .describe_instances()
            .max_results(5)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("DescribeInstances", "*", e))
    }

    /// The type of the spot request behind each of `instances` (spot ones only). An instance
    /// EC2 reports no request for is absent.
    ///
    /// Active requests are listed and matched on their `InstanceId`, rather than looked up by
    /// the instance's `SpotInstanceRequestId`, because moto leaves that field empty: one code
    /// path for EC2 and the emulator.
    pub async fn spot_request_types(
        &self,
        instances: &[String],
    ) -> Result<HashMap<String, SpotRequestType>, AwsError> {
        let mut pages = self
            .client
            .describe_spot_instance_requests()
            .filters(filter("state", ["active", "disabled"]))
            .into_paginator()
            .send();
        let mut out = HashMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                AwsError::from_sdk("DescribeSpotInstanceRequests", &join(instances), e)
            })?;
            for request in page.spot_instance_requests() {
                let Some(id) = request.instance_id() else {
                    continue;
                };
                if !instances.iter().any(|i| i == id) {
                    continue;
                }
                let kind = match request.r#type() {
                    Some(SpotInstanceType::Persistent) => SpotRequestType::Persistent,
                    _ => SpotRequestType::OneTime,
                };
                out.insert(id.to_owned(), kind);
            }
        }
        Ok(out)
    }

    /// StopInstances, optionally hibernating.
    pub async fn stop(&self, ids: &[String], hibernate: bool) -> Result<(), AwsError> {
        self.client
            .stop_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .hibernate(hibernate)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("StopInstances", &join(ids), e))
    }

    /// StartInstances.
    pub async fn start(&self, ids: &[String]) -> Result<(), AwsError> {
        self.client
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("StartInstances", &join(ids), e))
    }

    /// TerminateInstances.
    pub async fn terminate(&self, ids: &[String]) -> Result<(), AwsError> {
        self.client
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("TerminateInstances", &join(ids), e))
    }

    /// RebootInstances.
    pub async fn reboot(&self, ids: &[String]) -> Result<(), AwsError> {
        self.client
            .reboot_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("RebootInstances", &join(ids), e))
    }

    /// Run `call` with `DryRun=true` on `ids`: `Ok` when EC2 says the call would succeed.
    pub async fn dry_run(&self, call: Call, ids: &[String]) -> Result<(), AwsError> {
        let c = &self.client;
        let object = if ids.is_empty() {
            "*".to_owned()
        } else {
            join(ids)
        };
        let ids = Some(ids.to_vec());
        let op = call.operation();
        match call {
            Call::DescribeInstances => dry_run(
                op,
                &object,
                c.describe_instances().dry_run(true).send().await,
            ),
            Call::DescribeSpotInstanceRequests => dry_run(
                op,
                &object,
                c.describe_spot_instance_requests()
                    .dry_run(true)
                    .send()
                    .await,
            ),
            Call::StopInstances => dry_run(
                op,
                &object,
                c.stop_instances()
                    .set_instance_ids(ids)
                    .dry_run(true)
                    .send()
                    .await,
            ),
            Call::StartInstances => dry_run(
                op,
                &object,
                c.start_instances()
                    .set_instance_ids(ids)
                    .dry_run(true)
                    .send()
                    .await,
            ),
            Call::TerminateInstances => dry_run(
                op,
                &object,
                c.terminate_instances()
                    .set_instance_ids(ids)
                    .dry_run(true)
                    .send()
                    .await,
            ),
            Call::RebootInstances => dry_run(
                op,
                &object,
                c.reboot_instances()
                    .set_instance_ids(ids)
                    .dry_run(true)
                    .send()
                    .await,
            ),
        }
    }

    /// Start those of `ids` that are stopped (waiting for `stopping` ones to get there), and
    /// nothing else: idempotent, and it never starts what EC2 would refuse to (a terminated
    /// instance, which moto would happily "start"). Returns the ids it could not start because
    /// they are gone.
    pub async fn start_stopped(&self, ids: &[String]) -> Result<Vec<String>, AwsError> {
        let deadline = tokio::time::Instant::now() + STOPPED_WAIT;
        loop {
            let now = self.describe_ids(ids).await?;
            let gone: Vec<String> = ids
                .iter()
                .filter(|id| {
                    now.get(*id)
                        .is_none_or(|i| super::select::is_gone(&i.state))
                })
                .cloned()
                .collect();
            let stopping = ids
                .iter()
                .any(|id| now.get(id).is_some_and(|i| i.state == "stopping"));
            if stopping && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(STOPPED_POLL).await;
                continue;
            }
            let stopped: Vec<String> = ids
                .iter()
                .filter(|id| now.get(*id).is_some_and(|i| i.state == "stopped"))
                .cloned()
                .collect();
            if !stopped.is_empty() {
                self.start(&stopped).await?;
            }
            if stopping {
                return Err(AwsError::IncorrectState {
                    operation: "StartInstances",
                    object: join(ids),
                    message: format!(
                        "still stopping after {}s; start it by hand once it is stopped",
                        STOPPED_WAIT.as_secs()
                    ),
                });
            }
            return Ok(gone);
        }
    }
}

/// An EC2 call a fault makes, for the `DryRun` permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Call {
    /// Selection and state checks.
    DescribeInstances,
    /// Whether a spot instance may be stopped.
    DescribeSpotInstanceRequests,
    /// `ec2_stop`, spot interruption with stop behaviour.
    StopInstances,
    /// Revert of a stop.
    StartInstances,
    /// `ec2_terminate`, spot interruption with terminate behaviour.
    TerminateInstances,
    /// `ec2_reboot`.
    RebootInstances,
}

impl Call {
    /// The API operation name (and IAM action after `ec2:`).
    pub fn operation(self) -> &'static str {
        match self {
            Call::DescribeInstances => "DescribeInstances",
            Call::DescribeSpotInstanceRequests => "DescribeSpotInstanceRequests",
            Call::StopInstances => "StopInstances",
            Call::StartInstances => "StartInstances",
            Call::TerminateInstances => "TerminateInstances",
            Call::RebootInstances => "RebootInstances",
        }
    }

    /// Whether the call takes instance ids (and so is checked on the selected ones).
    pub fn takes_ids(self) -> bool {
        !matches!(
            self,
            Call::DescribeInstances | Call::DescribeSpotInstanceRequests
        )
    }
}
