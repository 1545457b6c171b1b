//! Finding the pods a fault hits: the IO half of selection (lists, with the API server
//! applying labels and fields), handing the rest to the pure [`super::select`] functions.
//! Shared by every pod-level fault.

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;
use serde::{Deserialize, Serialize};

use super::client::{list_all, op_err};
use super::select::{field_selector, filter_pods, label_selector, pick, pod_key};
use super::spec::{Mode, PodSelector};
use super::Shared;
use crate::targets::{Resolution, TargetError};

/// One pod as the ledger records it: enough to act on it again, and its UID so that a pod
/// re-created under the same name (a StatefulSet's) is not mistaken for the one we hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID at selection time.
    pub uid: String,
}

impl PodRef {
    /// From an API object.
    pub fn of(pod: &Pod) -> Self {
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// `pod namespace/name`, the form used in ledger targets and `plan`.
    pub fn target(&self) -> String {
        format!("pod {}/{}", self.namespace, self.name)
    }
}

/// List the pods `sel` matches (all pages), before the gameday-side filters.
pub async fn list_matching(shared: &Shared, sel: &PodSelector) -> Result<Vec<Pod>, TargetError> {
    let mut lp = ListParams::default();
    if let Some(l) = label_selector(&sel.label_selectors, sel.expression_selector.as_deref()) {
        lp = lp.labels(&l);
    }
    if let Some(f) = field_selector(&sel.field_selectors) {
        lp = lp.fields(&f);
    }
    let mut pods = Vec::new();
    if sel.namespaces.is_empty() {
        let api: Api<Pod> = Api::all(shared.client().await?);
        pods = list_all(&api, &lp)
            .await
            .map_err(|e| op_err("list pods", "all namespaces", e))?;
    } else {
        for ns in &sel.namespaces {
            let api: Api<Pod> = Api::namespaced(shared.client().await?, ns);
            pods.extend(
                list_all(&api, &lp)
                    .await
                    .map_err(|e| op_err("list pods", format!("namespace {ns}"), e))?,
            );
        }
    }
    Ok(pods)
}

/// Resolve a pod selector and mode to the pods hit now, with the [`Resolution`] `plan`
/// shows. Fails when nothing is eligible: a fault that hits nothing proves nothing.
#[allow(clippy::too_many_arguments)]
pub async fn resolve_pods(
    shared: &Shared,
    fault: &str,
    sel: &PodSelector,
    mode: Mode,
    value: Option<u32>,
    cap: Option<usize>,
) -> Result<(Vec<PodRef>, Resolution), TargetError> {
    mode.check_value(value)
        .map_err(|e| TargetError::Selection {
            fault: fault.to_string(),
            reason: e.to_string(),
        })?;
    let pods = list_matching(shared, sel).await?;
    let filtered = filter_pods(
        pods,
        sel,
        &shared.protected,
        shared.config.allow_protected_namespaces,
    );
    let eligible = filtered.eligible.len();
    if eligible == 0 {
        let mut reason = "no eligible pod matches the selector".to_string();
        for n in &filtered.notes {
            reason.push_str("; ");
            reason.push_str(n);
        }
        return Err(TargetError::Selection {
            fault: fault.to_string(),
            reason,
        });
    }
    let picked = pick(
        filtered.eligible,
        mode,
        value,
        cap,
        filtered.down,
        &mut rand::thread_rng(),
    )
    .map_err(|e| TargetError::Selection {
        fault: fault.to_string(),
        reason: e.to_string(),
    })?;
    let mut refs: Vec<PodRef> = picked.iter().map(PodRef::of).collect();
    refs.sort_by_key(|r| (r.namespace.clone(), r.name.clone()));
    let resolution = Resolution {
        targets: refs.iter().map(PodRef::target).collect(),
        eligible,
        cap,
        notes: filtered.notes,
    };
    debug_assert!(picked.iter().all(|p| !pod_key(p).is_empty()));
    Ok((refs, resolution))
}
