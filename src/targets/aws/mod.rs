//! The AWS target: EC2 instances, hit by spot interruptions (the fault that spot savings bring,
//! rule P-3) and by stop / reboot / terminate for DR drills.
//!
//! Files: [`spec`] (what scenarios write), [`select`] (pure selection rules), [`ec2`] (every
//! EC2 call, each able to dry-run), [`error`], [`notice`] (the seam to the Kubernetes target),
//! [`fis`] (AWS FIS experiments), [`preflight`] (the DryRun permission check of `plan`), and one
//! file per fault kind: [`spot_interruption`], [`ec2_stop`], [`ec2_reboot`], [`ec2_terminate`].
//!
//! Credentials and region come from the standard AWS chain only ([`AwsTarget::connect`]); the
//! scenario may override the region and the endpoint (for emulators such as moto).
//! `AWS_ENDPOINT_URL_EC2` works too, with no code here. Nothing secret is ever logged or written
//! to the ledger: [`Target::ledger_config`] holds the scenario's settings only (rule S-3).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use super::{Fault, Finding, Prepared, Resolution, Target, TargetError};

pub mod ec2;
pub mod ec2_reboot;
pub mod ec2_stop;
pub mod ec2_terminate;
pub mod error;
pub mod fis;
pub mod notice;
pub mod preflight;
pub mod select;
pub mod spec;
pub mod spot_interruption;

use error::AwsError;
use notice::SpotNoticeHandler;
use select::InstanceInfo;
use spec::{AwsFaultSpec, AwsTargetConfig, InstanceSelector};

/// The fault kinds of this target, by their scenario key (`spot_interruption` is shared with
/// the local sandbox: an entry with `select:` is EC2's).
pub const FAULT_KINDS: &[&str] = &[
    "spot_interruption",
    "ec2_stop",
    "ec2_reboot",
    "ec2_terminate",
];

/// One API call never takes longer than this, retries included: a hung endpoint must not hang
/// a gameday that has faults to revert.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The AWS target. Cheap to clone: faults share it.
#[derive(Clone)]
pub struct AwsTarget {
    inner: Arc<Inner>,
}

/// What the target and its faults share.
pub(crate) struct Inner {
    pub(crate) config: AwsTargetConfig,
    pub(crate) ec2: ec2::Ec2,
    pub(crate) fis: aws_sdk_fis::Client,
    pub(crate) region: Option<String>,
    pub(crate) notice: Option<Arc<dyn SpotNoticeHandler>>,
    /// `--yes`: the scenario may name no account (see [`AwsTarget::confirm_any_account`]).
    pub(crate) any_account: bool,
    /// Faults made by [`AwsTarget::fault`], so that `preflight` (which is handed `&dyn Fault`)
    /// can find their specs without downcasting.
    faults: Mutex<Vec<Arc<AwsFault>>>,
}

impl std::fmt::Debug for AwsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the scenario's settings: the SDK config holds the credentials provider.
        f.debug_struct("AwsTarget")
            .field("config", &self.inner.config)
            .field("region", &self.inner.region)
            .finish_non_exhaustive()
    }
}

impl AwsTarget {
    /// Connect with the standard AWS credential and region chain, applying the scenario's
    /// region and endpoint overrides. Makes no API call (see [`Target::check_reachable`]).
    pub async fn connect(config: AwsTargetConfig) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        Self::from_sdk_config(config, &sdk)
    }

    /// Build from an SDK config loaded elsewhere (tests give explicit test credentials this way,
    /// without touching the process environment). The scenario's overrides still apply.
    pub fn from_sdk_config(config: AwsTargetConfig, sdk: &SdkConfig) -> Self {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let mut ec2_conf = aws_sdk_ec2::config::Builder::from(sdk).timeout_config(timeouts.clone());
        let mut fis_conf = aws_sdk_fis::config::Builder::from(sdk).timeout_config(timeouts);
        if let Some(region) = &config.region {
            ec2_conf = ec2_conf.region(Region::new(region.clone()));
            fis_conf = fis_conf.region(Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            ec2_conf = ec2_conf.endpoint_url(url);
            fis_conf = fis_conf.endpoint_url(url);
        }
        let region = config
            .region
            .clone()
            .or_else(|| sdk.region().map(|r| r.to_string()));
        AwsTarget {
            inner: Arc::new(Inner {
                ec2: ec2::Ec2::new(aws_sdk_ec2::Client::from_conf(ec2_conf.build())),
                fis: aws_sdk_fis::Client::from_conf(fis_conf.build()),
                region,
                config,
                notice: None,
                any_account: false,
                faults: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Rebuild the target from [`Target::ledger_config`] in a fresh process (`gameday
    /// recover`).
    pub async fn from_ledger_config(value: &serde_json::Value) -> Result<Self, TargetError> {
        let config: AwsTargetConfig = serde_json::from_value(value.clone()).map_err(|e| {
            TargetError::Invalid(format!("unreadable aws target config in the ledger: {e}"))
        })?;
        Ok(Self::connect(config).await)
    }

    /// Plug in what reacts to spot notices (the Kubernetes target's cordon and drain), when the
    /// scenario configures both targets. Must be called before any fault is made.
    pub fn with_notice_handler(self, handler: Arc<dyn SpotNoticeHandler>) -> Self {
        self.map_inner(|inner| inner.notice = Some(handler))
    }

    /// Accept a scenario that names no account in `allowed_account_ids` (`--yes`). Without
    /// it, preflight refuses such a scenario, as the Kubernetes target refuses a context the
    /// scenario does not name: credentials left in a shell must not pick the account.
    pub fn confirm_any_account(self) -> Self {
        self.map_inner(|inner| inner.any_account = true)
    }

    /// Replace the FIS client (tests: FIS is not in moto, so its path runs against the SDK's
    /// own `aws-smithy-mocks`). Must be called before any fault is made.
    pub fn with_fis_client(self, client: aws_sdk_fis::Client) -> Self {
        self.map_inner(|inner| inner.fis = client)
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| {
            panic!("AwsTarget builder methods must run before faults are made")
        });
        f(&mut inner);
        AwsTarget {
            inner: Arc::new(inner),
        }
    }

    /// Make the fault `name` of a scenario. Refuses parameters that [`AwsFaultSpec::validate`]
    /// refuses, so a fault object is always runnable.
    pub fn fault(&self, name: &str, spec: AwsFaultSpec) -> Result<Arc<dyn Fault>, TargetError> {
        let errors = spec.validate();
        if !errors.is_empty() {
            let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            return Err(TargetError::Invalid(format!(
                "fault {name} ({}): {}",
                spec.kind(),
                list.join("; ")
            )));
        }
        let fault = Arc::new(AwsFault {
            name: name.to_owned(),
            spec,
            inner: self.inner.clone(),
        });
        self.inner
            .faults
            .lock()
            .expect("fault registry lock")
            .push(fault.clone());
        Ok(fault)
    }

    /// The spec of a fault this target made, if `fault` is one.
    pub(crate) fn own_fault(&self, fault: &dyn Fault) -> Option<Arc<AwsFault>> {
        let faults = self.inner.faults.lock().expect("fault registry lock");
        faults
            .iter()
            .find(|f| std::ptr::addr_eq(Arc::as_ptr(f), fault as *const dyn Fault))
            .cloned()
    }
}

impl Inner {
    /// The running instances a selector matches, refusing foreign accounts, and how many
    /// more it matches that are out of service now ([`select::is_out`]).
    pub(crate) async fn eligible(
        &self,
        fault: &str,
        sel: &InstanceSelector,
        spot_only: bool,
    ) -> Result<(Vec<InstanceInfo>, usize), TargetError> {
        let found = self.ec2.describe_selected(sel).await?;
        let down = found
            .iter()
            .filter(|i| select::is_out(&i.state) && select::matches_selector(i, sel, spot_only))
            .count();
        let eligible: Vec<InstanceInfo> = found
            .into_iter()
            .filter(|i| select::matches(i, sel, spot_only))
            .collect();
        if let Some(bad) =
            select::foreign_accounts(&eligible, &self.config.allowed_account_ids).first()
        {
            return Err(AwsError::ForeignAccount {
                instance_id: bad.id.clone(),
                owner: bad.owner_id.clone().unwrap_or_else(|| "unknown".to_owned()),
            }
            .into());
        }
        if eligible.is_empty() {
            return Err(TargetError::Selection {
                fault: fault.to_owned(),
                reason: format!(
                    "no running {}instance matches the selector",
                    if spot_only { "spot " } else { "" }
                ),
            });
        }
        Ok((eligible, down))
    }

    /// Eligible instances, how many matching ones are out of service, and a pick among the
    /// eligible. Refused when those out of service already fill `max_targets`.
    pub(crate) async fn pick(
        &self,
        fault: &str,
        sel: &InstanceSelector,
        spot_only: bool,
    ) -> Result<(Vec<InstanceInfo>, usize, Vec<InstanceInfo>), TargetError> {
        let (eligible, down) = self.eligible(fault, sel, spot_only).await?;
        let ids = select::pick(&eligible, sel, down, &mut rand::thread_rng());
        if let (true, Some(cap)) = (ids.is_empty(), sel.max_targets) {
            return Err(TargetError::Selection {
                fault: fault.to_owned(),
                reason: format!(
                    "{down} matching instance(s) are already pending, stopping or stopped, which fills \
                     max_targets {cap}; space the faults out or raise max_targets"
                ),
            });
        }
        // In id order (as `select::pick` returns them), for stable ledgers and reports.
        let mut picked: Vec<InstanceInfo> = eligible
            .iter()
            .filter(|i| ids.contains(&i.id))
            .cloned()
            .collect();
        picked.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((eligible, down, picked))
    }

    /// Re-read `ids` just before acting and fail, naming it, if one is gone: acting on the
    /// rest would hit a different set than the ledger says.
    pub(crate) async fn still_running(&self, ids: &[String]) -> Result<(), AwsError> {
        let now = self.ec2.describe_ids(ids).await?;
        for id in ids {
            match now.get(id) {
                None => {
                    return Err(AwsError::InstanceGone {
                        instance_id: id.clone(),
                        state: "not found".to_owned(),
                    })
                }
                Some(i) if select::is_gone(&i.state) => {
                    return Err(AwsError::InstanceGone {
                        instance_id: id.clone(),
                        state: i.state.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// One AWS fault of a scenario.
pub struct AwsFault {
    pub(crate) name: String,
    pub(crate) spec: AwsFaultSpec,
    pub(crate) inner: Arc<Inner>,
}

impl AwsFault {
    /// The fault's name in the scenario.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fault's parameters.
    pub fn spec(&self) -> &AwsFaultSpec {
        &self.spec
    }
}

#[async_trait]
impl Fault for AwsFault {
    fn kind(&self) -> &'static str {
        self.spec.kind()
    }

    fn detail(&self) -> Option<String> {
        match &self.spec {
            AwsFaultSpec::SpotInterruption(s) => Some(spot_interruption::detail(s)),
            _ => None,
        }
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        let sel = self.spec.selector();
        let spot_only = matches!(self.spec, AwsFaultSpec::SpotInterruption(_));
        let (eligible, down, picked) = self.inner.pick(&self.name, sel, spot_only).await?;
        let mut notes = Vec::new();
        if down > 0 {
            notes.push(format!(
                "{down} matching instance(s) already pending, stopping or stopped count against max_targets"
            ));
        }
        if picked.len() < eligible.len() {
            notes.push(format!(
                "{} of {} eligible instances are picked at random at run time; this is one possible pick",
                picked.len(),
                eligible.len()
            ));
        }
        match &self.spec {
            AwsFaultSpec::SpotInterruption(s) => notes.extend(spot_interruption::plan_notes(s)),
            AwsFaultSpec::Ec2Stop(_) => notes.push(ec2_stop::PLAN_NOTE.to_owned()),
            AwsFaultSpec::Ec2Reboot(_) => notes.push(ec2_reboot::PLAN_NOTE.to_owned()),
            AwsFaultSpec::Ec2Terminate(_) => notes.push(ec2_terminate::PLAN_NOTE.to_owned()),
        }
        Ok(Resolution {
            targets: picked.into_iter().map(|i| i.id).collect(),
            eligible: eligible.len(),
            cap: sel.max_targets,
            notes,
        })
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        match &self.spec {
            AwsFaultSpec::SpotInterruption(s) => spot_interruption::prepare(self, s).await,
            AwsFaultSpec::Ec2Stop(s) => ec2_stop::prepare(self, s).await,
            AwsFaultSpec::Ec2Reboot(s) => ec2_reboot::prepare(self, s).await,
            AwsFaultSpec::Ec2Terminate(s) => ec2_terminate::prepare(self, s).await,
        }
    }

    async fn inject(&self, prepared: &Prepared, deadline: SystemTime) -> Result<(), TargetError> {
        match &self.spec {
            AwsFaultSpec::SpotInterruption(s) => {
                spot_interruption::inject(self, s, prepared, deadline).await
            }
            AwsFaultSpec::Ec2Stop(s) => ec2_stop::inject(self, s, prepared).await,
            AwsFaultSpec::Ec2Reboot(_) => ec2_reboot::inject(self, prepared).await,
            AwsFaultSpec::Ec2Terminate(_) => ec2_terminate::inject(self, prepared).await,
        }
    }
}

#[async_trait]
impl Target for AwsTarget {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn check_reachable(&self) -> Result<(), TargetError> {
        self.inner.ec2.ping().await.map_err(TargetError::from)
    }

    async fn preflight(&self, faults: &[&dyn Fault]) -> Result<Vec<Finding>, TargetError> {
        preflight::run(self, faults).await
    }

    async fn revert(&self, kind: &str, undo: &serde_json::Value) -> Result<(), TargetError> {
        match kind {
            "spot_interruption" => spot_interruption::revert(&self.inner, undo).await,
            "ec2_stop" => ec2_stop::revert(&self.inner, undo).await,
            // Nothing lasting to undo: a reboot ends by itself, a termination cannot be undone
            // (the ledger record says `irreversible`).
            "ec2_reboot" | "ec2_terminate" => Ok(()),
            other => Err(TargetError::Invalid(format!(
                "the aws target has no fault kind `{other}` to revert; was the ledger written by a newer gameday?"
            ))),
        }
    }

    fn ledger_config(&self) -> serde_json::Value {
        // The scenario's settings only, never credentials (they come from the chain); with the
        // region the chain resolved, so that `recover` acts in the same region even from a
        // shell whose AWS_REGION differs.
        let mut config = self.inner.config.clone();
        config.region = self.inner.region.clone();
        serde_json::to_value(&config).unwrap_or(serde_json::Value::Null)
    }
}

/// Parse an undo record of `kind`.
pub(crate) fn parse_undo<T: serde::de::DeserializeOwned>(
    kind: &str,
    undo: &serde_json::Value,
) -> Result<T, TargetError> {
    serde_json::from_value(undo.clone()).map_err(|source| {
        AwsError::UndoRecord {
            kind: kind.to_owned(),
            source,
        }
        .into()
    })
}
