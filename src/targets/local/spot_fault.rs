//! `spot_interruption`: the sandbox's take on EC2's two-minute warning (see [`super::spot`]).
//!
//! Irreversible, like the real thing: once noticed, the instance's processes are terminated
//! after the notice period and nothing brings *them* back; the fleet supervisor may start
//! replacements. Revert is a no-op that says so.

use std::collections::BTreeSet;
use std::time::SystemTime;

use async_trait::async_trait;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::net::{instance_name, SandboxNet};
use super::spec::{InstanceSelector, SpotSpec};
use crate::targets::{within_cap, Fault, Prepared, Resolution, TargetError};

/// The kind name used in scenarios and the ledger.
pub const KIND: &str = "spot_interruption";

/// What the ledger keeps about a spot interruption (nothing can be undone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpotUndo {
    /// The instances noticed.
    pub instances: Vec<String>,
    /// For people reading the ledger.
    pub note: String,
}

/// One `spot_interruption` fault of a scenario.
pub struct SpotFault {
    name: String,
    spec: SpotSpec,
    sandbox: SandboxNet,
}

impl SpotFault {
    /// A fault named `name`.
    pub fn new(name: impl Into<String>, spec: SpotSpec, sandbox: SandboxNet) -> Self {
        SpotFault {
            name: name.into(),
            spec,
            sandbox,
        }
    }

    fn selection_error(&self, reason: String) -> TargetError {
        TargetError::Selection {
            fault: self.name.clone(),
            reason,
        }
    }

    /// Instances that could be hit: known to the sandbox and not already noticed (or, before
    /// the sandbox runs, for `plan`: every configured instance).
    fn eligible(&self) -> Vec<String> {
        let of_service = |i: &String| match &self.spec.service {
            Some(svc) => runs_service(i, svc),
            None => true,
        };
        if !self.sandbox.is_running() && self.sandbox.planned().is_some() {
            return self
                .sandbox
                .planned_instances()
                .into_iter()
                .filter(of_service)
                .collect();
        }
        self.sandbox
            .spots
            .instances()
            .into_iter()
            .filter(of_service)
            .filter(|i| {
                self.sandbox
                    .spots
                    .get(i)
                    .is_some_and(|h| h.current_notice().is_none())
            })
            .collect()
    }

    fn pick(&self, eligible: &[String]) -> Result<Vec<String>, TargetError> {
        match &self.spec.instances {
            InstanceSelector::Count(n) => {
                if eligible.len() < *n {
                    return Err(self.selection_error(format!(
                        "{n} instance(s) asked, {} not yet interrupted: {}",
                        eligible.len(),
                        eligible.join(", ")
                    )));
                }
                let mut picked: Vec<String> = eligible
                    .choose_multiple(&mut rand::thread_rng(), *n)
                    .cloned()
                    .collect();
                picked.sort();
                Ok(picked)
            }
            InstanceSelector::Names(names) => {
                for name in names {
                    if !eligible.contains(name) {
                        return Err(self.selection_error(format!(
                            "instance {name:?} is unknown or already interrupted (eligible: {})",
                            eligible.join(", ")
                        )));
                    }
                }
                Ok(names.clone())
            }
        }
    }
}

/// Whether instance `instance` (named by [`super::net::instance_name`]) holds `service`'s
/// replicas.
fn runs_service(instance: &str, service: &str) -> bool {
    instance
        .strip_prefix(service)
        .and_then(|rest| rest.strip_prefix("-i"))
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

impl SpotFault {
    /// The blast-radius check of the local target (`max_percent` of a service's replicas).
    /// The cap bounds how many replicas are out at once: every replica on the picked
    /// instances, plus those already out (not running or not ready, or on an instance
    /// whose notice runs). Counting only the new hits let a second interruption, or one
    /// during a `process_kill`, take a whole service down "within cap". Returns the cap, in
    /// replicas, of the service the fault is restricted to, if any.
    fn check_cap(&self, picked: &[String]) -> Result<Option<usize>, TargetError> {
        let Some(config) = self.sandbox.planned() else {
            return Ok(None);
        };
        let running = self.sandbox.is_running();
        let mut out_of_service: BTreeSet<(String, u32)> = match self.sandbox.terminator() {
            Some(t) if running => t.out_of_service().into_iter().collect(),
            _ => BTreeSet::new(),
        };
        let noticed: BTreeSet<String> = if running {
            self.sandbox
                .spots
                .instances()
                .into_iter()
                .filter(|i| {
                    self.sandbox
                        .spots
                        .get(i)
                        .is_some_and(|h| h.current_notice().is_some())
                })
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut own_cap = None;
        for svc in &config.services {
            let replicas = svc.replicas as usize;
            let cap = (replicas as f64 * config.max_percent / 100.0).floor() as usize;
            if self.spec.service.as_deref() == Some(svc.name.as_str()) {
                own_cap = Some(cap);
            }
            let size = svc.instance_size.max(1);
            let on = |index: u32| instance_name(&svc.name, index / size);
            let mut hit = 0;
            let mut down = 0;
            for index in 0..svc.replicas {
                if picked.contains(&on(index)) {
                    hit += 1;
                } else if noticed.contains(&on(index))
                    || out_of_service.remove(&(svc.name.clone(), index))
                {
                    down += 1;
                }
            }
            if hit == 0 {
                continue;
            }
            if let Err(out) = within_cap(down, hit, cap) {
                let instances = picked.iter().filter(|i| runs_service(i, &svc.name)).count();
                let already = if down > 0 {
                    format!(", with {down} already down or not ready: {out} out at once")
                } else {
                    String::new()
                };
                return Err(self.selection_error(format!(
                    "would take {hit} of {replicas} replicas of `{}` ({instances} instance(s)){already}, over \
                     the blast-radius cap of {cap} (target.local.max_percent: {}%); interrupt fewer \
                     instances, space the faults out or raise max_percent on purpose",
                    svc.name, config.max_percent
                )));
            }
        }
        Ok(own_cap)
    }
}

fn invalid(name: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError::Invalid(format!("fault {name}: {e}"))
}

#[async_trait]
impl Fault for SpotFault {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        let notice = self
            .spec
            .notice_period()
            .map_err(|e| invalid(&self.name, e))?;
        let eligible = self.eligible();
        let picked = self.pick(&eligible)?;
        let cap = self.check_cap(&picked)?;
        Ok(Resolution {
            targets: picked,
            eligible: eligible.len(),
            cap,
            notes: vec![format!(
                "{} notice, then the instance's processes are terminated (irreversible)",
                humantime::format_duration(notice)
            )],
        })
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        let resolution = self.resolve().await?;
        let undo = SpotUndo {
            instances: resolution.targets.clone(),
            note: "irreversible: the instances' processes are terminated after the notice; the \
                   fleet supervisor may start replacements"
                .into(),
        };
        Ok(Prepared {
            targets: resolution.targets,
            undo: serde_json::to_value(&undo).map_err(|e| invalid(&self.name, e))?,
            irreversible: true,
        })
    }

    async fn inject(&self, prepared: &Prepared, _deadline: SystemTime) -> Result<(), TargetError> {
        let notice = self
            .spec
            .notice_period()
            .map_err(|e| invalid(&self.name, e))?;
        let terminator = self
            .sandbox
            .terminator()
            .ok_or_else(|| TargetError::Unreachable {
                target: "local".into(),
                reason: "the fleet has not registered how to terminate an instance".into(),
            })?;
        for instance in &prepared.targets {
            let endpoint = self.sandbox.spots.get(instance).ok_or_else(|| {
                self.selection_error(format!("instance {instance:?} has no metadata endpoint"))
            })?;
            let task = super::spot::interrupt(
                &endpoint,
                notice,
                self.spec.action,
                terminator.clone(),
                self.sandbox.cancel_token().child_token(),
            );
            let fault = self.name.clone();
            let instance = instance.clone();
            self.sandbox.tracker().spawn(async move {
                match task.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        tracing::error!(%fault, %instance, %error, "spot termination failed")
                    }
                    Err(error) => {
                        tracing::error!(%fault, %instance, %error, "spot termination task failed")
                    }
                }
            });
        }
        Ok(())
    }
}

/// Revert of a spot interruption: nothing can be undone (the record says so). Idempotent.
pub fn revert(_sandbox: &SandboxNet, undo: &serde_json::Value) -> Result<(), TargetError> {
    tracing::info!(undo = %undo, "spot interruption is irreversible: nothing to revert");
    Ok(())
}
