//! What a scenario writes for the AWS target: the target's connection settings, the instance
//! selector shared by every EC2 fault, and one parameter struct per fault kind.
//!
//! These structs are the JSON Schema of the `aws` part of a scenario, so every field carries a
//! doc comment (it becomes the schema description) and unknown keys are refused. Checks that
//! need no network live here too ([`AwsFaultSpec::validate`]) so that `gameday validate` can
//! refuse a scenario before anything is resolved.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Dur;

/// How gameday reaches AWS. Credentials are never configured here: they come from the standard
/// AWS chain (environment, shared profile, instance or pod role), so that nothing secret is
/// ever written into a scenario, the ledger or the report (rule S-3).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct AwsTargetConfig {
    /// AWS region (`eu-west-1`). When absent the standard chain decides (`AWS_REGION`, the
    /// profile), like every other AWS tool the team uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint override for an emulator (`http://127.0.0.1:5000` for moto). Leave unset for
    /// real AWS; `AWS_ENDPOINT_URL_EC2` in the environment works too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Accounts this scenario may touch. An instance owned by any other account is refused,
    /// so a production profile left in the shell cannot turn a staging gameday into an outage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_account_ids: Vec<String>,
}

/// Which instances a fault may hit. Only running instances are ever selected.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct InstanceSelector {
    /// Tags an instance must all carry, with these exact values (`team: shop`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Availability zones to pick from (`us-east-1b`); empty means any zone of the region.
    #[serde(default)]
    pub availability_zones: Vec<String>,
    /// Explicit instance ids; combined with the other filters (all must match).
    #[serde(default)]
    pub instance_ids: Vec<String>,
    /// Spot, on-demand or both. `spot_interruption` always selects spot instances only.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// How many of the matching instances to hit.
    #[serde(default)]
    pub mode: SelectMode,
    /// Number of instances for `mode: count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Share of the matching instances for `mode: percent`, from 1 to 100, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Blast-radius cap: never more than this many instances, whatever the mode says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_targets: Option<usize>,
}

/// The purchase option of an instance, as EC2 reports it in `InstanceLifecycle`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Spot instances only.
    Spot,
    /// On-demand (and reserved) instances only: no `InstanceLifecycle` field.
    OnDemand,
    /// Both.
    #[default]
    Any,
}

/// How many of the eligible instances a fault hits.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SelectMode {
    /// One instance, picked at random.
    #[default]
    One,
    /// `count` instances, picked at random.
    Count,
    /// `percent` of the eligible instances (rounded up), picked at random.
    Percent,
}

/// One AWS fault as written in a scenario: the key names the kind (`spot_interruption: {...}`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum AwsFaultSpec {
    /// A spot interruption: notice, then stop or terminate after the notice period.
    SpotInterruption(SpotInterruptionSpec),
    /// Stop instances; revert starts them again.
    Ec2Stop(Ec2StopSpec),
    /// Reboot instances; nothing to revert, the reboot ends by itself.
    Ec2Reboot(Ec2RebootSpec),
    /// Terminate instances. Cannot be reverted: the scenario must acknowledge it.
    Ec2Terminate(Ec2TerminateSpec),
}

/// A spot interruption, rehearsed the way EC2 delivers it: a notice, then after the notice
/// period the instance is stopped or terminated.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SpotInterruptionSpec {
    /// Which spot instances to interrupt (the lifecycle is forced to spot).
    pub select: InstanceSelector,
    /// Time between the notice and the interruption, like EC2's two-minute warning
    /// (`120s` by default; `fis` accepts 2 to 15 minutes).
    #[serde(default = "default_notice")]
    pub notice: Dur,
    /// What happens to the instance at the end of the notice.
    #[serde(default)]
    pub behavior: InterruptionBehavior,
    /// How the interruption is delivered.
    #[serde(default)]
    pub method: InterruptionMethod,
    /// IAM role FIS assumes to interrupt the instances; required with `method: fis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fis_role_arn: Option<String>,
    /// Must be `true` with `behavior: terminate`: a terminated instance cannot be brought back.
    #[serde(default)]
    pub acknowledge_irreversible: bool,
}

fn default_notice() -> Dur {
    Dur::from_secs(120)
}

/// What EC2 does to a spot instance at the end of the notice (the request's interruption
/// behaviour).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InterruptionBehavior {
    /// Terminate (EC2's default). Irreversible.
    #[default]
    Terminate,
    /// Stop; only instances of a persistent spot request can be stopped. Revert starts them,
    /// as EC2 would once capacity is back.
    Stop,
    /// Hibernate where the instance is configured for it, else stop.
    Hibernate,
}

/// How a spot interruption is delivered.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InterruptionMethod {
    /// gameday gives the notice itself (cordon and drain the node through the Kubernetes
    /// target, where configured) and then stops or terminates through EC2. Needs EC2
    /// permissions only.
    #[default]
    Ec2,
    /// An AWS FIS experiment (`aws:ec2:send-spot-instance-interruptions`): the instance gets
    /// the real notice (instance metadata, EventBridge) that node-termination handlers react
    /// to. Needs FIS permissions and `fis_role_arn`. Always terminates.
    Fis,
}

/// Stop instances (a DR drill: a zone loses its machines). Revert starts them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Ec2StopSpec {
    /// Which instances to stop.
    pub select: InstanceSelector,
    /// Hibernate instead of stop, where the instance is configured for hibernation.
    #[serde(default)]
    pub hibernate: bool,
}

/// Reboot instances. A reboot ends by itself, so there is nothing to revert.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Ec2RebootSpec {
    /// Which instances to reboot.
    pub select: InstanceSelector,
}

/// Terminate instances (a DR drill with real loss).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Ec2TerminateSpec {
    /// Which instances to terminate.
    pub select: InstanceSelector,
    /// Must be `true`: termination cannot be reverted, and the scenario says so out loud.
    #[serde(default)]
    pub acknowledge_irreversible: bool,
}

/// A problem in an AWS fault's parameters, found without any network call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The offending key, as a path below the fault (`select.percent`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// FIS refuses a `durationBeforeInterruption` outside 2 to 15 minutes.
const FIS_NOTICE_MIN: Duration = Duration::from_secs(120);
const FIS_NOTICE_MAX: Duration = Duration::from_secs(15 * 60);

impl AwsTargetConfig {
    /// Problems of the target's settings, found without any network call.
    pub fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        if let Some(r) = &self.region {
            let ok = !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && r.contains('-');
            if !ok {
                errors.push(err(
                    "region",
                    format!("`{r}` is not an AWS region name (like `eu-west-1`)"),
                ));
            }
        }
        if let Some(u) = &self.endpoint_url {
            let ok = (u.starts_with("http://") || u.starts_with("https://"))
                && u.parse::<http::Uri>().is_ok_and(|uri| uri.host().is_some());
            if !ok {
                errors.push(err(
                    "endpoint_url",
                    format!("`{u}` is not an http(s) URL (like `http://127.0.0.1:5000` for moto)"),
                ));
            }
        }
        for a in &self.allowed_account_ids {
            if a.len() != 12 || !a.chars().all(|c| c.is_ascii_digit()) {
                errors.push(err(
                    "allowed_account_ids",
                    format!("`{a}` is not an AWS account id (12 digits; quote it in YAML)"),
                ));
            }
        }
        errors
    }
}

impl AwsFaultSpec {
    /// The fault kind as written in scenarios and in the ledger.
    pub fn kind(&self) -> &'static str {
        match self {
            AwsFaultSpec::SpotInterruption(_) => "spot_interruption",
            AwsFaultSpec::Ec2Stop(_) => "ec2_stop",
            AwsFaultSpec::Ec2Reboot(_) => "ec2_reboot",
            AwsFaultSpec::Ec2Terminate(_) => "ec2_terminate",
        }
    }

    /// The instance selector of this fault.
    pub fn selector(&self) -> &InstanceSelector {
        match self {
            AwsFaultSpec::SpotInterruption(s) => &s.select,
            AwsFaultSpec::Ec2Stop(s) => &s.select,
            AwsFaultSpec::Ec2Reboot(s) => &s.select,
            AwsFaultSpec::Ec2Terminate(s) => &s.select,
        }
    }

    /// Whether a run of this fault can be undone. `plan` and the report say so when not.
    pub fn irreversible(&self) -> bool {
        match self {
            AwsFaultSpec::SpotInterruption(s) => {
                s.method == InterruptionMethod::Fis || s.behavior == InterruptionBehavior::Terminate
            }
            AwsFaultSpec::Ec2Terminate(_) => true,
            AwsFaultSpec::Ec2Stop(_) | AwsFaultSpec::Ec2Reboot(_) => false,
        }
    }

    /// Every problem of this fault's parameters at once (for `gameday validate`).
    pub fn validate(&self) -> Vec<SpecError> {
        let mut errors = self.selector().validate();
        match self {
            AwsFaultSpec::SpotInterruption(s) => {
                if s.select.lifecycle == Lifecycle::OnDemand {
                    errors.push(err(
                        "select.lifecycle",
                        "spot_interruption hits spot instances only; drop `lifecycle` or set it to `spot`",
                    ));
                }
                let notice = s.notice.get();
                if s.method == InterruptionMethod::Fis
                    && !(FIS_NOTICE_MIN..=FIS_NOTICE_MAX).contains(&notice)
                {
                    errors.push(err(
                        "notice",
                        format!(
                            "`{}` is outside what FIS accepts (2m to 15m) for method: fis",
                            s.notice
                        ),
                    ));
                }
                if s.method == InterruptionMethod::Fis {
                    if s.fis_role_arn.is_none() {
                        errors.push(err(
                            "fis_role_arn",
                            "method: fis needs the ARN of the IAM role FIS assumes to interrupt instances",
                        ));
                    }
                    if s.behavior != InterruptionBehavior::Terminate {
                        errors.push(err(
                            "behavior",
                            "method: fis interrupts as the spot request says; use behavior: terminate, or method: ec2 to stop",
                        ));
                    }
                } else if s.fis_role_arn.is_some() {
                    errors.push(err("fis_role_arn", "only used with method: fis"));
                }
                if self.irreversible() && !s.acknowledge_irreversible {
                    errors.push(err(
                        "acknowledge_irreversible",
                        "terminated instances cannot be brought back: set `acknowledge_irreversible: true` to say you mean it, or use behavior: stop",
                    ));
                }
            }
            AwsFaultSpec::Ec2Terminate(s) => {
                if !s.acknowledge_irreversible {
                    errors.push(err(
                        "acknowledge_irreversible",
                        "ec2_terminate cannot be reverted: set `acknowledge_irreversible: true` to say you mean it, or use ec2_stop",
                    ));
                }
            }
            AwsFaultSpec::Ec2Stop(_) | AwsFaultSpec::Ec2Reboot(_) => {}
        }
        errors
    }
}

impl SpotInterruptionSpec {
    /// The notice period.
    pub fn notice_duration(&self) -> Duration {
        self.notice.get()
    }
}

impl InstanceSelector {
    /// The instances this selector names, in words (`tagged team=shop in us-east-1a`), for
    /// messages and overlap checks: two faults with the same words hit the same instances.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.instance_ids.is_empty() {
            parts.push(self.instance_ids.join(","));
        }
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("tagged {}", tags.join(",")));
        }
        if !self.availability_zones.is_empty() {
            parts.push(format!("in {}", self.availability_zones.join(",")));
        }
        match self.lifecycle {
            Lifecycle::Spot => parts.push("spot".to_owned()),
            Lifecycle::OnDemand => parts.push("on-demand".to_owned()),
            Lifecycle::Any => {}
        }
        parts.join(" ")
    }

    /// Problems of the selector alone.
    pub fn validate(&self) -> Vec<SpecError> {
        let mut errors = Vec::new();
        if self.tags.is_empty() && self.instance_ids.is_empty() {
            errors.push(err(
                "select",
                "give `tags` or `instance_ids`: a selector without them would match every instance in the account",
            ));
        }
        match self.mode {
            SelectMode::One => {
                if self.count.is_some() || self.percent.is_some() {
                    errors.push(err(
                        "select.mode",
                        "`count` and `percent` need `mode: count` or `mode: percent`",
                    ));
                }
            }
            SelectMode::Count => match self.count {
                None | Some(0) => errors.push(err(
                    "select.count",
                    "mode: count needs `count` of 1 or more",
                )),
                Some(_) if self.percent.is_some() => {
                    errors.push(err("select.percent", "only used with mode: percent"))
                }
                Some(_) => {}
            },
            SelectMode::Percent => match self.percent {
                None | Some(0) => errors.push(err(
                    "select.percent",
                    "mode: percent needs `percent` from 1 to 100",
                )),
                Some(p) if p > 100 => errors.push(err(
                    "select.percent",
                    format!("{p} is over 100; use 1 to 100"),
                )),
                Some(_) if self.count.is_some() => {
                    errors.push(err("select.count", "only used with mode: count"))
                }
                Some(_) => {}
            },
        }
        if self.max_targets == Some(0) {
            errors.push(err(
                "select.max_targets",
                "0 would hit nothing; remove the fault, or give 1 or more",
            ));
        }
        for id in &self.instance_ids {
            if !id.starts_with("i-") {
                errors.push(err(
                    "select.instance_ids",
                    format!("`{id}` is not an instance id (they look like i-0abc123...)"),
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> AwsFaultSpec {
        serde_saphyr::from_str(yaml).expect("valid yaml")
    }

    #[test]
    fn spot_interruption_defaults_are_ec2_terminate_after_two_minutes() {
        let spec = parse(
            "spot_interruption:\n  select:\n    tags: {team: shop}\n  acknowledge_irreversible: true\n",
        );
        let AwsFaultSpec::SpotInterruption(s) = &spec else {
            panic!("wrong kind: {spec:?}")
        };
        assert_eq!(s.notice_duration(), Duration::from_secs(120));
        assert_eq!(s.behavior, InterruptionBehavior::Terminate);
        assert_eq!(s.method, InterruptionMethod::Ec2);
        assert!(spec.irreversible());
        assert_eq!(spec.validate(), vec![]);
    }

    #[test]
    fn terminate_without_acknowledgement_is_refused() {
        let spec = parse("ec2_terminate:\n  select:\n    instance_ids: [i-0abc]\n");
        let errors = spec.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "acknowledge_irreversible");
        let spec = parse("spot_interruption:\n  select:\n    tags: {a: b}\n");
        assert_eq!(spec.validate()[0].field, "acknowledge_irreversible");
        // Stop behaviour is reversible and needs no acknowledgement.
        let spec = parse("spot_interruption:\n  select:\n    tags: {a: b}\n  behavior: stop\n");
        assert_eq!(spec.validate(), vec![]);
        assert!(!spec.irreversible());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let res: Result<AwsFaultSpec, _> =
            serde_saphyr::from_str("ec2_stop:\n  select:\n    tagz: {a: b}\n");
        assert!(res.is_err());
    }

    #[test]
    fn empty_selector_and_bad_modes_are_all_reported_at_once() {
        let spec = parse("ec2_stop:\n  select:\n    mode: percent\n    percent: 150\n    max_targets: 0\n    instance_ids: []\n");
        let fields: Vec<_> = spec.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec!["select", "select.percent", "select.max_targets"]
        );
    }

    #[test]
    fn fis_needs_a_role_and_a_notice_fis_accepts() {
        let spec = parse(
            "spot_interruption:\n  select: {tags: {a: b}}\n  method: fis\n  notice: 30s\n  acknowledge_irreversible: true\n",
        );
        let fields: Vec<_> = spec.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["notice", "fis_role_arn"]);
    }
}
