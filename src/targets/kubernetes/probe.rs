//! Probes the hypothesis reads from the cluster while faults run: a workload keeps enough
//! ready replicas, and the selected pods' containers do not restart more than allowed.
//! Each probe is one read; the engine decides how often to take it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::Api;

use super::client::op_err;
use super::pods::list_matching;
use super::spec::{PodRestartsProbe, WorkloadKind, WorkloadReadyProbe};
use super::Shared;
use crate::targets::TargetError;

/// One reading of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReading {
    /// Whether the hypothesis holds on this reading.
    pub ok: bool,
    /// What was measured, for the report (`deployment shop/web: 2/3 ready, need 3`).
    pub detail: String,
}

/// Read a Deployment's or StatefulSet's ready replicas against the probe's minimum.
pub async fn workload_ready(
    shared: &Shared,
    probe: &WorkloadReadyProbe,
) -> Result<ProbeReading, TargetError> {
    let c = shared.client().await?;
    let object = format!("{}/{}", probe.namespace, probe.name);
    let (kind, desired, ready) = match probe.kind {
        WorkloadKind::Deployment => {
            let d = Api::<Deployment>::namespaced(c, &probe.namespace)
                .get(&probe.name)
                .await
                .map_err(|e| op_err("get deployment", &object, e))?;
            (
                "deployment",
                d.spec.and_then(|s| s.replicas).unwrap_or(1),
                d.status.and_then(|s| s.ready_replicas).unwrap_or(0),
            )
        }
        WorkloadKind::Statefulset => {
            let s = Api::<StatefulSet>::namespaced(c, &probe.namespace)
                .get(&probe.name)
                .await
                .map_err(|e| op_err("get statefulset", &object, e))?;
            (
                "statefulset",
                s.spec.and_then(|s| s.replicas).unwrap_or(1),
                s.status.and_then(|s| s.ready_replicas).unwrap_or(0),
            )
        }
    };
    let need = probe.min_ready.unwrap_or(desired);
    Ok(ProbeReading {
        ok: ready >= need,
        detail: format!("{kind} {object}: {ready}/{desired} ready, need {need}"),
    })
}

/// Restart counts per pod UID and container, taken when a restart probe starts.
#[derive(Debug, Clone, Default)]
pub struct RestartBaseline {
    counts: BTreeMap<(String, String), i32>,
}

/// Sum the containers' restart counts of the selected pods, keyed by pod UID.
async fn restart_counts(
    shared: &Shared,
    probe: &PodRestartsProbe,
) -> Result<BTreeMap<(String, String), i32>, TargetError> {
    let pods = list_matching(shared, &probe.selector).await?;
    let mut out = BTreeMap::new();
    for p in pods {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        for cs in p
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            out.insert((uid.clone(), cs.name.clone()), cs.restart_count);
        }
    }
    Ok(out)
}

impl RestartBaseline {
    /// Take the baseline now.
    pub async fn take(shared: &Shared, probe: &PodRestartsProbe) -> Result<Self, TargetError> {
        Ok(Self {
            counts: restart_counts(shared, probe).await?,
        })
    }

    /// Restarts since the baseline: increases on pods that were there, plus every restart
    /// of pods that appeared since (replacements start from zero).
    pub fn restarts_since(&self, now: &BTreeMap<(String, String), i32>) -> u32 {
        now.iter()
            .map(|(k, n)| (n - self.counts.get(k).copied().unwrap_or(0)).max(0) as u32)
            .sum()
    }

    /// Read the probe against this baseline.
    pub async fn read(
        &self,
        shared: &Shared,
        probe: &PodRestartsProbe,
    ) -> Result<ProbeReading, TargetError> {
        let now = restart_counts(shared, probe).await?;
        let n = self.restarts_since(&now);
        Ok(ProbeReading {
            ok: n <= probe.max_restarts,
            detail: format!(
                "{n} container restart(s) since the probe started, at most {} allowed",
                probe.max_restarts
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_count_increases_and_new_pods() {
        let base = RestartBaseline {
            counts: [
                (("a".into(), "app".into()), 2),
                (("gone".into(), "app".into()), 5),
            ]
            .into(),
        };
        let now: BTreeMap<(String, String), i32> = [
            (("a".into(), "app".into()), 3),
            (("new".into(), "app".into()), 1),
        ]
        .into();
        assert_eq!(base.restarts_since(&now), 2);
    }
}
