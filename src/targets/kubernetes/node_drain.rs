//! `node_drain`: cordon the selected nodes, then evict their pods through the Eviction
//! API so that PodDisruptionBudgets are honoured (a 429 means "not now": retried until
//! `eviction_timeout`), as `kubectl drain` does. Revert uncordons the nodes that gameday
//! cordoned (never one that was cordoned before the run). Evicted pods are not brought
//! back: their controllers replace them, which is the point of the exercise.
//!
//! Eviction is posted as `policy/v1` where the server serves it and `policy/v1beta1`
//! otherwise (Kubernetes 1.20 and older), found through discovery; the request is written
//! by hand because `kube`'s `Api::evict` always speaks `policy/v1`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{api_code, is_not_found, list_all, op_err, Kube};
use super::pods::PodRef;
use super::select::{field_selector, filter_nodes, label_selector, node_ready, pick};
use super::spec::NodeDrainSpec;
use super::{parse_undo, Shared};
use crate::targets::{Fault, Prepared, Resolution, TargetError};

/// The kind as written in scenarios.
pub const KIND: &str = "node_drain";

/// How long to wait between evictions a PodDisruptionBudget refused. `kubectl drain`
/// waits 5 s; a shorter wait lets a gameday see the budget free up sooner.
const EVICTION_RETRY: Duration = Duration::from_secs(1);

/// One drained node in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainedNode {
    /// Node name.
    pub name: String,
    /// The node was already cordoned before the run: revert leaves it cordoned.
    pub was_unschedulable: bool,
}

/// The ledger record of a drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDrainUndo {
    /// The nodes, with their schedulability before the fault.
    pub nodes: Vec<DrainedNode>,
    /// The pods that were on them at prepare time (evicted, not restorable).
    pub pods: Vec<PodRef>,
    /// Retry budget for evictions, in milliseconds.
    pub eviction_timeout_ms: u64,
    /// Grace period for each eviction.
    pub grace_period_seconds: Option<u32>,
}

/// A bound `node_drain` fault.
pub struct NodeDrain {
    shared: Arc<Shared>,
    name: String,
    spec: NodeDrainSpec,
}

/// Whether `kubectl drain` would leave the pod alone: DaemonSet pods (their controller
/// ignores cordons and would put them straight back), mirror pods (the kubelet owns
/// them), and pods that are finished or already terminating.
pub fn skip_on_drain(pod: &Pod) -> bool {
    let daemonset = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    daemonset || mirror || finished || pod.metadata.deletion_timestamp.is_some()
}

/// The pods a drain of `node` would evict now.
pub async fn pods_to_evict(shared: &Shared, node: &str) -> Result<Vec<PodRef>, TargetError> {
    let api: Api<Pod> = Api::all(shared.client().await?);
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let pods = list_all(&api, &lp)
        .await
        .map_err(|e| op_err("list pods on node", node, e))?;
    let mut refs: Vec<PodRef> = pods
        .iter()
        .filter(|p| !skip_on_drain(p))
        .map(PodRef::of)
        .collect();
    refs.sort_by_key(|r| (r.namespace.clone(), r.name.clone()));
    Ok(refs)
}

/// Mark a node (un)schedulable with a merge patch (what `kubectl cordon` sends).
pub async fn set_unschedulable(kube: &Kube, node: &str, value: bool) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(kube.client.clone());
    let patch = json!({ "spec": { "unschedulable": value } });
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Post one Eviction. `Ok(true)`: evicted; `Ok(false)`: the pod is already gone.
/// A 429 (the budget refuses) comes back as the error for the caller to retry.
pub async fn evict(
    kube: &Kube,
    pod: &PodRef,
    grace_period_seconds: Option<u32>,
) -> Result<bool, kube::Error> {
    let version = kube.policy_version().await?;
    let mut delete_options = json!({});
    if let Some(g) = grace_period_seconds {
        delete_options["gracePeriodSeconds"] = json!(g);
    }
    if !pod.uid.is_empty() {
        delete_options["preconditions"] = json!({ "uid": pod.uid });
    }
    let body = json!({
        "apiVersion": version.api_version(),
        "kind": "Eviction",
        "metadata": { "name": pod.name, "namespace": pod.namespace },
        "deleteOptions": delete_options,
    });
    let req = http::Request::post(format!(
        "/api/v1/namespaces/{}/pods/{}/eviction",
        pod.namespace, pod.name
    ))
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(serde_json::to_vec(&body).expect("eviction serializes"))
    .expect("eviction request");
    match kube.client.request_text(req).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether an eviction error means "not now, try again", as `kubectl drain` treats it: a
/// PodDisruptionBudget refusing (429), or the pod's namespace being deleted (403 with the
/// NamespaceTerminating cause: the namespace controller is about to delete the pod, after
/// which the eviction answers 404).
pub fn eviction_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(r) => {
            r.code == 429 || (r.code == 403 && r.message.contains("because it is being terminated"))
        }
        _ => false,
    }
}

/// Evict one pod, retrying while a PodDisruptionBudget refuses (429), until `until`.
pub async fn evict_with_retry(
    shared: &Shared,
    pod: &PodRef,
    grace_period_seconds: Option<u32>,
    until: Instant,
) -> Result<(), TargetError> {
    let mut refusals = 0u32;
    let kube = shared.kube().await?;
    loop {
        match evict(kube, pod, grace_period_seconds).await {
            Ok(_) => {
                if refusals > 0 {
                    tracing::info!(pod = %pod.target(), refusals, "eviction allowed after the disruption budget refused it");
                }
                return Ok(());
            }
            Err(e) if eviction_retryable(&e) => {
                refusals += 1;
                if Instant::now() + EVICTION_RETRY > until {
                    return Err(TargetError::Op {
                        action: "evict pod".into(),
                        object: format!("{}/{}", pod.namespace, pod.name),
                        source: anyhow::anyhow!(
                            "the eviction was refused {refusals} times (a PodDisruptionBudget, or a terminating namespace) until eviction_timeout ran out: {e}"
                        ),
                    });
                }
                tokio::time::sleep(EVICTION_RETRY).await;
            }
            Err(e) => {
                return Err(op_err(
                    "evict pod",
                    format!("{}/{}", pod.namespace, pod.name),
                    e,
                ))
            }
        }
    }
}

impl NodeDrain {
    /// Bind the spec to a target.
    pub fn new(shared: Arc<Shared>, name: String, spec: NodeDrainSpec) -> Self {
        Self { shared, name, spec }
    }

    async fn resolve_nodes(
        &self,
    ) -> Result<(Vec<DrainedNode>, Vec<PodRef>, Resolution), TargetError> {
        let s = &self.spec;
        s.mode
            .check_value(s.value)
            .map_err(|e| TargetError::Selection {
                fault: self.name.clone(),
                reason: e.to_string(),
            })?;
        let sel = &s.selector;
        let mut lp = ListParams::default();
        if let Some(l) = label_selector(&sel.label_selectors, sel.expression_selector.as_deref()) {
            lp = lp.labels(&l);
        }
        if let Some(f) = field_selector(&sel.field_selectors) {
            lp = lp.fields(&f);
        }
        let api: Api<Node> = Api::all(self.shared.client().await?);
        let nodes = list_all(&api, &lp)
            .await
            .map_err(|e| op_err("list nodes", "cluster", e))?;
        let matching = filter_nodes(nodes, sel);
        if matching.is_empty() {
            return Err(TargetError::Selection {
                fault: self.name.clone(),
                reason: "no node matches the selector".into(),
            });
        }
        // What a drain of each matching node would evict. A node whose drain would evict
        // pods of a protected namespace is not eligible (unless the scenario allows it),
        // just as those pods are not eligible for pod faults.
        let mut on_node = self.pods_by_node(&matching).await?;
        let mut notes = Vec::new();
        // A node that is not Ready is out already: not a victim, but it counts against
        // `max_targets` (see `select::pick`).
        let (matching, not_ready): (Vec<Node>, Vec<Node>) =
            matching.into_iter().partition(node_ready);
        if !not_ready.is_empty() {
            notes.push(format!(
                "{} matching node(s) not ready left out; they count against max_targets: {}",
                not_ready.len(),
                not_ready
                    .iter()
                    .filter_map(|n| n.metadata.name.as_deref())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let allow = self.shared.config.allow_protected_namespaces;
        let eligible: Vec<Node> = matching
            .into_iter()
            .filter(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                let protected: BTreeSet<&str> = on_node
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .filter(|p| self.shared.protected.contains(&p.namespace))
                    .map(|p| p.namespace.as_str())
                    .collect();
                if protected.is_empty() || allow {
                    return true;
                }
                notes.push(format!(
                    "node {name} left out: draining it would evict pods of protected namespace(s) {} (set allow_protected_namespaces to include it)",
                    protected.into_iter().collect::<Vec<_>>().join(", ")
                ));
                false
            })
            .collect();
        if eligible.is_empty() {
            return Err(TargetError::Selection {
                fault: self.name.clone(),
                reason: format!("no eligible node: {}", notes.join("; ")),
            });
        }
        let n = eligible.len();
        let picked = pick(
            eligible,
            s.mode,
            s.value,
            s.max_targets,
            not_ready.len(),
            &mut rand::thread_rng(),
        )
        .map_err(|e| TargetError::Selection {
            fault: self.name.clone(),
            reason: e.to_string(),
        })?;
        let mut nodes: Vec<DrainedNode> = picked
            .iter()
            .map(|n| DrainedNode {
                name: n.metadata.name.clone().unwrap_or_default(),
                was_unschedulable: n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true),
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut pods = Vec::new();
        for node in &nodes {
            let on = on_node.remove(&node.name).unwrap_or_default();
            notes.push(format!(
                "node {}: {} pod(s) to evict{}{}",
                node.name,
                on.len(),
                if on.is_empty() { "" } else { ": " },
                on.iter()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            if node.was_unschedulable {
                notes.push(format!(
                    "node {} is already cordoned; revert will leave it cordoned",
                    node.name
                ));
            }
            pods.extend(on);
        }
        // The targets are the nodes; the pods a drain evicts are in the notes (and the
        // preflight derives them from the nodes again).
        let targets: Vec<String> = nodes.iter().map(|n| format!("node {}", n.name)).collect();
        let res = Resolution {
            targets,
            eligible: n,
            cap: s.max_targets,
            notes,
        };
        Ok((nodes, pods, res))
    }

    /// The pods a drain would evict, per node: one filtered list for a single node, one
    /// cluster-wide list (paged) grouped by node for several.
    async fn pods_by_node(
        &self,
        nodes: &[Node],
    ) -> Result<BTreeMap<String, Vec<PodRef>>, TargetError> {
        let names: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        let mut out: BTreeMap<String, Vec<PodRef>> = BTreeMap::new();
        if let [only] = names.as_slice() {
            out.insert(only.clone(), pods_to_evict(&self.shared, only).await?);
            return Ok(out);
        }
        let api: Api<Pod> = Api::all(self.shared.client().await?);
        let all = list_all(&api, &ListParams::default())
            .await
            .map_err(|e| op_err("list pods", "all namespaces", e))?;
        for n in &names {
            out.insert(n.clone(), Vec::new());
        }
        for p in all.iter().filter(|p| !skip_on_drain(p)) {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            if let Some(v) = node.and_then(|n| out.get_mut(&n)) {
                v.push(PodRef::of(p));
            }
        }
        for v in out.values_mut() {
            v.sort_by_key(|r| (r.namespace.clone(), r.name.clone()));
        }
        Ok(out)
    }

    async fn drain(&self, undo: &NodeDrainUndo) -> Result<(), TargetError> {
        drain(&self.shared, &self.name, undo).await
    }
}

/// Cordon the nodes of `undo` that were schedulable, then evict what runs on them now, as
/// `kubectl drain` does. Shared by `node_drain` and the spot notice (see [`super::spot_notice`]);
/// `fault` names the cause in logs.
pub async fn drain(
    shared: &Arc<Shared>,
    fault: &str,
    undo: &NodeDrainUndo,
) -> Result<(), TargetError> {
    for node in undo.nodes.iter().filter(|n| !n.was_unschedulable) {
        set_unschedulable(shared.kube().await?, &node.name, true)
            .await
            .map_err(|e| op_err("cordon node", &node.name, e))?;
        tracing::info!(fault = %fault, node = %node.name, "cordoned");
    }
    let until = Instant::now() + Duration::from_millis(undo.eviction_timeout_ms);
    for node in &undo.nodes {
        // Evict what is on the node now (pods may have moved since prepare), each pod
        // in its own task so one blocked by a budget does not hold up the others.
        let pods = pods_to_evict(shared, &node.name).await?;
        let mut set = tokio::task::JoinSet::new();
        for pod in pods {
            let shared = shared.clone();
            let grace = undo.grace_period_seconds;
            set.spawn(async move { evict_with_retry(&shared, &pod, grace, until).await });
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| TargetError::Op {
                action: "evict pods".into(),
                object: node.name.clone(),
                source: anyhow::Error::new(e),
            })??;
        }
        tracing::info!(fault = %fault, node = %node.name, "drained");
    }
    Ok(())
}

#[async_trait]
impl Fault for NodeDrain {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        Ok(self.resolve_nodes().await?.2)
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        self.spec
            .validate()
            .map_err(|e| TargetError::Invalid(format!("fault {}: {e}", self.name)))?;
        let (nodes, pods, res) = self.resolve_nodes().await?;
        let grace_period_seconds = self.spec.grace_period.map(|g| g.get().as_secs() as u32);
        let undo = NodeDrainUndo {
            nodes,
            pods,
            eviction_timeout_ms: self.spec.eviction_timeout().as_millis() as u64,
            grace_period_seconds,
        };
        Ok(Prepared {
            targets: res.targets,
            undo: serde_json::to_value(undo).expect("undo serializes"),
            irreversible: false,
        })
    }

    /// Cordon, then evict. On any failure the nodes this call cordoned are uncordoned
    /// before the error is returned, so a failed drain leaves no cordon behind (pods
    /// already evicted stay evicted: their controllers have replaced them).
    async fn inject(&self, prepared: &Prepared, _deadline: SystemTime) -> Result<(), TargetError> {
        let undo: NodeDrainUndo = parse_undo(KIND, &prepared.undo)?;
        match self.drain(&undo).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(re) = revert(&self.shared, &prepared.undo).await {
                    tracing::error!(fault = %self.name, error = %re, "uncordon after a failed drain failed; the ledger keeps it for recover");
                }
                Err(e)
            }
        }
    }
}

/// Uncordon the nodes gameday cordoned. Idempotent; a node that no longer exists is fine.
pub async fn revert(shared: &Shared, undo: &serde_json::Value) -> Result<(), TargetError> {
    let undo: NodeDrainUndo = parse_undo(KIND, undo)?;
    for node in undo.nodes.iter().filter(|n| !n.was_unschedulable) {
        match set_unschedulable(shared.kube().await?, &node.name, false).await {
            Ok(()) => tracing::info!(node = %node.name, "uncordoned"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(op_err("uncordon node", &node.name, e)),
        }
    }
    Ok(())
}
