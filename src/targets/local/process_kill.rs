//! `process_kill`: kill replicas of a local service with SIGKILL or SIGTERM, one, N or a
//! percentage of them, once or `every` interval. The supervisor restarts them, as a
//! ReplicaSet would, so the fault is irreversible by itself and recovers by the fleet.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use rand::seq::SliceRandom;

use super::fleet::{signal_process, ProcessUndo};
use super::spec::ProcessKillSpec;
use super::Sandbox;
use crate::targets::{within_cap, Fault, Prepared, Resolution, TargetError};

/// The fault, bound to the sandbox.
pub struct ProcessKill {
    pub(super) name: String,
    pub(super) spec: ProcessKillSpec,
    pub(super) sandbox: Arc<Sandbox>,
}

impl ProcessKill {
    fn cap(&self, replicas: usize) -> usize {
        ((replicas as f64) * self.sandbox.config.max_percent / 100.0).floor() as usize
    }

    fn check_cap(&self, down: usize, hit: usize, replicas: usize) -> Result<(), TargetError> {
        let cap = self.cap(replicas);
        if let Err(out) = within_cap(down, hit, cap) {
            let already = if down > 0 {
                format!(" ({down} already down or unready)")
            } else {
                String::new()
            };
            return Err(TargetError::Selection {
                fault: self.name.clone(),
                reason: format!(
                    "killing {hit} would leave {out} of {replicas} replicas of `{}` down{already}, over the blast-radius cap of {cap} \
                     (target.local.max_percent: {}%); lower `count`/`percent`, space the kills out, or raise max_percent on purpose",
                    self.spec.service, self.sandbox.config.max_percent
                ),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Fault for ProcessKill {
    fn kind(&self) -> &'static str {
        "process_kill"
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        let spec = self
            .sandbox
            .service_spec(&self.spec.service)
            .ok_or_else(|| TargetError::Selection {
                fault: self.name.clone(),
                reason: format!("no local service named `{}`", self.spec.service),
            })?;
        let replicas = spec.replicas as usize;
        let hit = self.spec.victims(replicas);
        let mut notes =
            vec!["replicas are picked at random among the running ones at injection time".into()];
        // `plan` judges the kill against a healthy fleet; the run judges it against the
        // fleet as it is at that moment (see `prepare`).
        if let Err(e) = self.check_cap(0, hit, replicas) {
            notes.push(e.to_string());
        }
        Ok(Resolution {
            targets: (0..hit)
                .map(|_| format!("1 replica of {}", self.spec.service))
                .collect(),
            eligible: replicas,
            cap: Some(self.cap(replicas)),
            notes,
        })
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        let fleet = self.sandbox.fleet()?;
        let replicas = fleet
            .service(&self.spec.service)
            .ok_or_else(|| TargetError::Selection {
                fault: self.name.clone(),
                reason: format!("no local service named `{}`", self.spec.service),
            })?;
        // Victims among the replicas that serve now; the others are already out and count
        // against the cap.
        let mut running: Vec<_> = replicas
            .iter()
            .filter_map(|r| {
                let st = r.state();
                st.pid.filter(|_| st.ready).map(|p| (r.name(), p))
            })
            .collect();
        let down = replicas.len() - running.len();
        let hit = self.spec.victims(replicas.len()).min(running.len());
        self.check_cap(down, hit, replicas.len())?;
        running.shuffle(&mut rand::thread_rng());
        running.truncate(hit);
        if running.is_empty() {
            return Err(TargetError::Selection {
                fault: self.name.clone(),
                reason: format!("no running replica of `{}` to kill", self.spec.service),
            });
        }
        let victims: Vec<ProcessUndo> = running
            .iter()
            .map(|(_, pid)| ProcessUndo {
                pid: *pid,
                pgid: *pid,
                start_time: super::fleet::process_start_time(*pid),
            })
            .collect();
        Ok(Prepared {
            targets: running
                .iter()
                .map(|(n, p)| format!("{n} (pid {p})"))
                .collect(),
            undo: serde_json::json!({ "killed": victims, "signal": self.spec.signal }),
            irreversible: true,
        })
    }

    async fn inject(&self, prepared: &Prepared, _deadline: SystemTime) -> Result<(), TargetError> {
        let victims: Vec<ProcessUndo> = serde_json::from_value(prepared.undo["killed"].clone())
            .map_err(|e| TargetError::Invalid(format!("bad process_kill record: {e}")))?;
        for v in &victims {
            if !signal_process(v, self.spec.signal.raw()) {
                tracing::warn!(pid = v.pid, "process already gone before the kill");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::local::spec::KillSignal;

    fn spec(count: Option<u32>, percent: Option<f64>) -> ProcessKillSpec {
        ProcessKillSpec {
            service: "s".into(),
            count,
            percent,
            signal: KillSignal::Sigkill,
        }
    }

    #[test]
    fn victims_follow_count_or_percent() {
        assert_eq!(spec(None, None).victims(3), 1);
        assert_eq!(spec(Some(2), None).victims(3), 2);
        assert_eq!(spec(Some(5), None).victims(3), 3);
        assert_eq!(spec(None, Some(50.0)).victims(3), 2);
        assert_eq!(spec(None, Some(10.0)).victims(4), 1);
    }
}
