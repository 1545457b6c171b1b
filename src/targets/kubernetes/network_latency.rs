//! `network_latency`: delay (and optionally drop) the egress traffic of selected pods with
//! `tc netem`, applied by an ephemeral container with NET_ADMIN in each pod's network
//! namespace. The container removes the qdisc itself at the run's deadline (so the fault
//! ends even if gameday died); revert adds a cleanup container that removes it at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::ephemeral::{self, sh_quote};
use super::pods::{resolve_pods, PodRef};
use super::spec::NetworkLatencySpec;
use super::{parse_undo, Shared};
use crate::targets::{Fault, Prepared, Resolution, TargetError};

/// The kind as written in scenarios.
pub const KIND: &str = "network_latency";

/// The ledger record: which pods, and the container names that inject and clean up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkLatencyUndo {
    /// Pods hit.
    pub pods: Vec<PodRef>,
    /// Name of the injecting ephemeral container (unique per fault instance).
    pub container: String,
    /// Interface netem sits on.
    pub interface: String,
    /// Image for the cleanup container.
    pub image: String,
    /// Delay in milliseconds.
    pub latency_ms: u64,
    /// Jitter in milliseconds.
    pub jitter_ms: Option<u64>,
    /// Loss percentage.
    pub loss_percent: Option<f64>,
}

/// A bound `network_latency` fault.
pub struct NetworkLatency {
    shared: Arc<Shared>,
    name: String,
    spec: NetworkLatencySpec,
}

/// A name for ephemeral containers of one fault instance: short, DNS-label safe, unique.
pub fn instance_name(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// The injecting script: apply netem, sleep until the deadline, remove it (also on TERM).
pub fn inject_script(undo: &NetworkLatencyUndo, seconds: u64) -> String {
    let mut netem = format!("netem delay {}ms", undo.latency_ms);
    if let Some(j) = undo.jitter_ms {
        netem.push_str(&format!(" {j}ms"));
    }
    if let Some(l) = undo.loss_percent {
        netem.push_str(&format!(" loss {l}%"));
    }
    let dev = sh_quote(&undo.interface);
    format!(
        "tc qdisc replace dev {dev} root {netem} || exit 1\n\
         cleanup() {{ tc qdisc del dev {dev} root 2>/dev/null; exit 0; }}\n\
         trap cleanup TERM INT\n\
         sleep {seconds} &\n\
         wait $!\n\
         cleanup\n"
    )
}

/// The cleanup script revert runs: remove the root qdisc netem replaced. Succeeds when
/// there is nothing to remove, so it can run more than once.
pub fn undo_script(interface: &str) -> String {
    format!(
        "tc qdisc del dev {} root 2>/dev/null; true\n",
        sh_quote(interface)
    )
}

/// Seconds from now to `deadline`, at least one.
pub fn seconds_until(deadline: SystemTime) -> u64 {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    left.as_secs().max(1) + u64::from(left.subsec_nanos() > 0)
}

impl NetworkLatency {
    /// Bind the spec to a target.
    pub fn new(shared: Arc<Shared>, name: String, spec: NetworkLatencySpec) -> Self {
        Self { shared, name, spec }
    }
}

#[async_trait]
impl Fault for NetworkLatency {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        let s = &self.spec;
        let (_, res) = resolve_pods(
            &self.shared,
            &self.name,
            &s.selector,
            s.mode,
            s.value,
            s.max_targets,
        )
        .await?;
        Ok(res)
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        let s = &self.spec;
        s.validate()
            .map_err(|e| TargetError::Invalid(format!("fault {}: {e}", self.name)))?;
        let (pods, res) = resolve_pods(
            &self.shared,
            &self.name,
            &s.selector,
            s.mode,
            s.value,
            s.max_targets,
        )
        .await?;
        let undo = NetworkLatencyUndo {
            pods,
            container: instance_name("gameday-netem"),
            interface: s.interface.clone(),
            image: s.image.clone(),
            latency_ms: s.latency.get().as_millis() as u64,
            jitter_ms: s.jitter.map(|j| j.get().as_millis() as u64),
            loss_percent: s.loss_percent,
        };
        Ok(Prepared {
            targets: res.targets,
            undo: serde_json::to_value(undo).expect("undo serializes"),
            irreversible: false,
        })
    }

    /// Add the netem container to each pod. If one pod fails, the pods already reached are
    /// cleaned up before the error returns, so a failed inject leaves nothing behind.
    async fn inject(&self, prepared: &Prepared, deadline: SystemTime) -> Result<(), TargetError> {
        let undo: NetworkLatencyUndo = parse_undo(KIND, &prepared.undo)?;
        ephemeral::ensure_supported(&self.shared).await?;
        let script = inject_script(&undo, seconds_until(deadline));
        for pod in &undo.pods {
            let ec = ephemeral::container(
                &undo.container,
                &undo.image,
                script.clone(),
                &["NET_ADMIN"],
                None,
            );
            match ephemeral::add(&self.shared, pod, ec, None).await {
                Ok(added) => {
                    tracing::info!(fault = %self.name, pod = %pod.target(), ?added, "netem container")
                }
                Err(e) => {
                    if let Err(re) = revert(&self.shared, &prepared.undo).await {
                        tracing::error!(fault = %self.name, error = %re, "cleanup after a failed inject failed; the ledger keeps it for recover");
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Add a cleanup container to every pod the injecting container reached. Idempotent.
pub async fn revert(shared: &Shared, undo: &serde_json::Value) -> Result<(), TargetError> {
    let undo: NetworkLatencyUndo = parse_undo(KIND, undo)?;
    let undo_name = format!("{}-undo", undo.container);
    for pod in &undo.pods {
        let ec = ephemeral::container(
            &undo_name,
            &undo.image,
            undo_script(&undo.interface),
            &["NET_ADMIN"],
            None,
        );
        let added = ephemeral::add(shared, pod, ec, Some(&undo.container)).await?;
        tracing::info!(pod = %pod.target(), ?added, "netem cleanup container");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undo() -> NetworkLatencyUndo {
        NetworkLatencyUndo {
            pods: vec![],
            container: "gameday-netem-1".into(),
            interface: "eth0".into(),
            image: "img".into(),
            latency_ms: 100,
            jitter_ms: Some(20),
            loss_percent: Some(1.5),
        }
    }

    #[test]
    fn inject_script_applies_then_removes_at_the_deadline() {
        let s = inject_script(&undo(), 90);
        assert!(
            s.starts_with(
                "tc qdisc replace dev 'eth0' root netem delay 100ms 20ms loss 1.5% || exit 1"
            ),
            "{s}"
        );
        assert!(s.contains("sleep 90 &"));
        assert!(s.contains("trap cleanup TERM INT"));
        assert!(s.trim_end().ends_with("cleanup"));
        assert_eq!(
            undo_script("eth0"),
            "tc qdisc del dev 'eth0' root 2>/dev/null; true\n"
        );
    }

    #[test]
    fn deadline_rounds_up_to_whole_seconds() {
        let d = SystemTime::now() + Duration::from_millis(2500);
        assert!((2..=3).contains(&seconds_until(d)));
        assert_eq!(seconds_until(SystemTime::now() - Duration::from_secs(5)), 1);
    }
}
