//! `plan`'s read-only preflight for Kubernetes faults, run before anything is injected:
//!
//! - **RBAC**: every verb the run will use, asked of the API server with
//!   SelfSubjectAccessReview (what `kubectl auth can-i` does), so a run does not fail
//!   halfway for want of a permission;
//! - **PodDisruptionBudgets** the faults would break, and workloads the faults would leave
//!   with no ready pod;
//! - **overlaps**: faults hitting the same pods;
//! - **node-local-dns**, which answers from its own cache and forwards names outside the
//!   cluster domain upstream directly, so a CoreDNS patch does not reach every query;
//! - **ephemeral containers**: faults that need them on a server too old to have them.
//!
//! It works from each fault's [`Resolution`] (`pod ns/name`, `node name`,
//! `configmap ns/name` targets), so it needs nothing beyond the `Fault` contract.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ListParams, PostParams};
use kube::Api;

use super::client::{is_not_found, list_all, op_err};
use super::{
    container_kill, dns_failure, ephemeral, network_latency, node_drain, pod_kill, Shared,
};
use crate::targets::{Fault, Finding, Severity, TargetError};

/// One permission the run needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// `get`, `list`, `delete`, `patch`, `create`.
    pub verb: &'static str,
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resource (`pods`).
    pub resource: &'static str,
    /// Subresource (`eviction`, `ephemeralcontainers`), or `""`.
    pub subresource: &'static str,
    /// Namespace, or `""` for cluster-wide.
    pub namespace: String,
    /// Object name, or `""` for any.
    pub name: String,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let res = if self.subresource.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let res = if self.group.is_empty() {
            res
        } else {
            format!("{res}.{}", self.group)
        };
        write!(f, "{} {res}", self.verb)?;
        if !self.name.is_empty() {
            write!(f, " {}", self.name)?;
        }
        if self.namespace.is_empty() {
            write!(f, " (cluster-wide)")
        } else {
            write!(f, " in namespace {}", self.namespace)
        }
    }
}

/// What one fault resolved to, split by object kind.
#[derive(Debug, Default, Clone)]
pub struct Hits {
    /// `(namespace, name)` of pods.
    pub pods: BTreeSet<(String, String)>,
    /// Node names.
    pub nodes: BTreeSet<String>,
    /// `(namespace, name)` of ConfigMaps.
    pub configmaps: BTreeSet<(String, String)>,
}

/// Split `Resolution::targets` strings back into objects.
pub fn parse_targets(targets: &[String]) -> Hits {
    let mut h = Hits::default();
    for t in targets {
        let split = |rest: &str| {
            rest.split_once('/')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        };
        if let Some(rest) = t.strip_prefix("pod ") {
            h.pods.extend(split(rest));
        } else if let Some(rest) = t.strip_prefix("node ") {
            h.nodes.insert(rest.to_string());
        } else if let Some(rest) = t.strip_prefix("configmap ") {
            h.configmaps.extend(split(rest));
        }
    }
    h
}

fn perm(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    sub: &'static str,
    ns: &str,
    name: &str,
) -> Permission {
    Permission {
        verb,
        group,
        resource,
        subresource: sub,
        namespace: ns.to_string(),
        name: name.to_string(),
    }
}

/// The permissions a fault of `kind` needs to act on `hits`.
pub fn permissions_for(kind: &str, hits: &Hits) -> Vec<Permission> {
    let namespaces: BTreeSet<&str> = hits.pods.iter().map(|(ns, _)| ns.as_str()).collect();
    let mut out = Vec::new();
    match kind {
        pod_kill::KIND => {
            for ns in &namespaces {
                out.push(perm("list", "", "pods", "", ns, ""));
                out.push(perm("delete", "", "pods", "", ns, ""));
            }
        }
        container_kill::KIND | network_latency::KIND => {
            for ns in &namespaces {
                out.push(perm("list", "", "pods", "", ns, ""));
                out.push(perm("get", "", "pods", "", ns, ""));
                out.push(perm("patch", "", "pods", "ephemeralcontainers", ns, ""));
            }
        }
        node_drain::KIND => {
            out.push(perm("list", "", "nodes", "", "", ""));
            for n in &hits.nodes {
                out.push(perm("patch", "", "nodes", "", "", n));
            }
            out.push(perm("list", "", "pods", "", "", ""));
            for ns in &namespaces {
                out.push(perm("create", "", "pods", "eviction", ns, ""));
            }
        }
        dns_failure::KIND => {
            for (ns, name) in &hits.configmaps {
                out.push(perm("get", "", "configmaps", "", ns, name));
                out.push(perm("patch", "", "configmaps", "", ns, name));
            }
            for ns in &namespaces {
                out.push(perm("list", "", "pods", "", ns, ""));
                out.push(perm("get", "", "pods", "", ns, ""));
                out.push(perm("patch", "", "pods", "ephemeralcontainers", ns, ""));
            }
        }
        _ => {}
    }
    out
}

/// Ask the API server whether the current user may do `p`.
pub async fn can_i(shared: &Shared, p: &Permission) -> Result<bool, TargetError> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: (!p.namespace.is_empty()).then(|| p.namespace.clone()),
                verb: Some(p.verb.to_string()),
                group: Some(p.group.to_string()),
                resource: Some(p.resource.to_string()),
                subresource: (!p.subresource.is_empty()).then(|| p.subresource.to_string()),
                name: (!p.name.is_empty()).then(|| p.name.clone()),
                ..Default::default()
            }),
            non_resource_attributes: None,
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(shared.client().await?);
    let r = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| op_err("create selfsubjectaccessreview", p.to_string(), e))?;
    Ok(r.status.map(|s| s.allowed).unwrap_or(false))
}

/// Whether a label selector selects an object with `labels` (matchLabels and
/// matchExpressions, as the API server evaluates them). An empty selector selects all.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let ml = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let me = sel.match_expressions.iter().flatten().all(|e| {
        let vals = e.values.clone().unwrap_or_default();
        let have = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| vals.contains(v)),
            "NotIn" => have.is_none_or(|v| !vals.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    ml && me
}

/// A PodDisruptionBudget, read from whichever policy version the server serves.
#[derive(Debug, Clone)]
pub struct Pdb {
    /// Name.
    pub name: String,
    /// Which pods it covers.
    pub selector: Option<LabelSelector>,
    /// How many of them may be disrupted now.
    pub disruptions_allowed: i32,
}

/// List the PodDisruptionBudgets of a namespace. Read as JSON and converted by hand from
/// either version: k8s-openapi's types are tied to one version, and `policy/v1beta1`'s
/// spec and status have the same fields as `policy/v1`'s.
pub async fn list_pdbs(shared: &Shared, ns: &str) -> Result<Vec<Pdb>, TargetError> {
    let v = shared
        .kube()
        .await?
        .policy_version()
        .await
        .map_err(|e| op_err("discover policy api", "cluster", e))?;
    let req = http::Request::get(format!(
        "/apis/{}/namespaces/{ns}/poddisruptionbudgets",
        v.api_version()
    ))
    .body(Vec::new())
    .expect("pdb request");
    let list: serde_json::Value = shared
        .client()
        .await?
        .request(req)
        .await
        .map_err(|e| op_err("list poddisruptionbudgets", format!("namespace {ns}"), e))?;
    let mut out = Vec::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let spec: PodDisruptionBudgetSpec =
            serde_json::from_value(item["spec"].clone()).unwrap_or_default();
        let status: PodDisruptionBudgetStatus =
            serde_json::from_value(item["status"].clone()).unwrap_or_default();
        out.push(Pdb {
            name: item["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            selector: spec.selector,
            disruptions_allowed: status.disruptions_allowed,
        });
    }
    Ok(out)
}

/// Run every check. Resolution failures become error findings too, so `plan` shows all
/// problems at once.
pub async fn run(shared: &Shared, faults: &[&dyn Fault]) -> Result<Vec<Finding>, TargetError> {
    let mut findings = Vec::new();
    let mut resolved: Vec<(usize, &'static str, Hits)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        match f.resolve().await {
            Ok(r) => {
                let mut hits = parse_targets(&r.targets);
                if f.kind() == node_drain::KIND {
                    // A drain's targets are nodes; what it disrupts is their pods.
                    for n in hits.nodes.clone() {
                        match node_drain::pods_to_evict(shared, &n).await {
                            Ok(pods) => hits
                                .pods
                                .extend(pods.into_iter().map(|p| (p.namespace, p.name))),
                            Err(e) => findings.push(Finding {
                                severity: Severity::Warning,
                                message: format!("could not list the pods on node {n}: {e}"),
                            }),
                        }
                    }
                }
                resolved.push((i, f.kind(), hits))
            }
            Err(e) => findings.push(Finding {
                severity: Severity::Error,
                message: format!("fault #{} ({}): {e}", i + 1, f.kind()),
            }),
        }
    }
    let label = |i: usize, kind: &str| format!("fault #{} ({kind})", i + 1);

    // RBAC.
    let mut perms = BTreeSet::new();
    for (_, kind, hits) in &resolved {
        perms.extend(permissions_for(kind, hits));
    }
    let mut denied = Vec::new();
    for p in &perms {
        if !can_i(shared, p).await? {
            denied.push(p.to_string());
        }
    }
    if !denied.is_empty() {
        findings.push(Finding {
            severity: Severity::Error,
            message: format!(
                "kube context `{}` lacks permissions the run needs: {}",
                shared.context,
                denied.join("; ")
            ),
        });
    }

    // Overlaps.
    let mut by_pod: BTreeMap<&(String, String), Vec<String>> = BTreeMap::new();
    for (i, kind, hits) in &resolved {
        for p in &hits.pods {
            by_pod.entry(p).or_default().push(label(*i, kind));
        }
    }
    let overlaps: Vec<String> = by_pod
        .iter()
        .filter(|(_, fs)| fs.len() > 1)
        .map(|((ns, n), fs)| format!("pod {ns}/{n} ({})", fs.join(", ")))
        .collect();
    if !overlaps.is_empty() {
        findings.push(Finding {
            severity: Severity::Warning,
            message: format!(
                "faults overlap on the same pods, so their effects mix: {}",
                overlaps.join("; ")
            ),
        });
    }

    // Budgets and ready replicas, for faults that take pods down.
    let disrupting: Vec<&(usize, &'static str, Hits)> = resolved
        .iter()
        .filter(|(_, k, _)| [pod_kill::KIND, node_drain::KIND, container_kill::KIND].contains(k))
        .collect();
    let namespaces: BTreeSet<&str> = disrupting
        .iter()
        .flat_map(|(_, _, h)| h.pods.iter().map(|(ns, _)| ns.as_str()))
        .collect();
    for ns in namespaces {
        let api: Api<Pod> = Api::namespaced(shared.client().await?, ns);
        // The preflight's own reads may be forbidden to a narrowly scoped account: that is
        // a gap in what plan can tell, not a reason to stop it.
        let read = async {
            let pods = list_all(&api, &ListParams::default())
                .await
                .map_err(|e| op_err("list pods", format!("namespace {ns}"), e))?;
            Ok::<_, TargetError>((pods, list_pdbs(shared, ns).await?))
        };
        let (pods, pdbs) = match read.await {
            Ok(x) => x,
            Err(e) => {
                findings.push(Finding {
                    severity: Severity::Warning,
                    message: format!("could not check disruption budgets and ready replicas in namespace {ns}: {e}"),
                });
                continue;
            }
        };
        for (i, kind, hits) in &disrupting {
            let hit: Vec<&Pod> = pods
                .iter()
                .filter(|p| {
                    hits.pods
                        .contains(&(ns.to_string(), p.metadata.name.clone().unwrap_or_default()))
                })
                .collect();
            if hit.is_empty() {
                continue;
            }
            for pdb in &pdbs {
                let Some(sel) = &pdb.selector else { continue };
                let n = hit
                    .iter()
                    .filter(|p| {
                        selector_matches(sel, &p.metadata.labels.clone().unwrap_or_default())
                    })
                    .count() as i32;
                if n > pdb.disruptions_allowed {
                    let what = if *kind == node_drain::KIND {
                        "its evictions will be refused (429) and retried until the budget allows them or eviction_timeout runs out"
                    } else {
                        "the fault does not go through the Eviction API, so it breaks the budget"
                    };
                    findings.push(Finding {
                        severity: Severity::Warning,
                        message: format!(
                            "{} disrupts {n} pod(s) covered by PodDisruptionBudget {ns}/{} which allows {} disruption(s) now: {what}",
                            label(*i, kind),
                            pdb.name,
                            pdb.disruptions_allowed
                        ),
                    });
                }
            }
            // Ready pods per controller: a fault that hits every ready pod of a workload
            // takes it down entirely.
            let mut per_owner: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for p in &pods {
                let Some(owner) = p
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .find(|o| o.controller == Some(true))
                else {
                    continue;
                };
                let e = per_owner
                    .entry(format!("{} {ns}/{}", owner.kind, owner.name))
                    .or_default();
                if super::select::pod_ready(p) {
                    e.0 += 1;
                    if hit.iter().any(|h| h.metadata.name == p.metadata.name) {
                        e.1 += 1;
                    }
                }
            }
            for (owner, (ready, hit_ready)) in per_owner {
                if ready > 0 && hit_ready >= ready {
                    findings.push(Finding {
                        severity: Severity::Warning,
                        message: format!(
                            "{} hits all {ready} ready pod(s) of {owner}: it will have no ready replica until replacements are ready",
                            label(*i, kind)
                        ),
                    });
                }
            }
        }
    }

    // node-local-dns bypasses a CoreDNS patch.
    if resolved
        .iter()
        .any(|(_, k, h)| *k == dns_failure::KIND && !h.configmaps.is_empty())
    {
        let api: Api<DaemonSet> = Api::namespaced(shared.client().await?, "kube-system");
        let by_name = match api.get_opt("node-local-dns").await {
            Ok(d) => d.is_some(),
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(op_err("get daemonset", "kube-system/node-local-dns", e)),
        };
        let by_label = !by_name
            && !api
                .list(
                    &ListParams::default()
                        .labels("k8s-app=node-local-dns")
                        .limit(1),
                )
                .await
                .map_err(|e| op_err("list daemonsets", "kube-system", e))?
                .items
                .is_empty();
        if by_name || by_label {
            findings.push(Finding {
                severity: Severity::Warning,
                message: "node-local-dns runs in kube-system: it answers from its own cache and forwards names outside the cluster domain upstream itself, so the CoreDNS patch is seen late or not at all; use `scope: pod` or expect a partial effect".into(),
            });
        }
    }

    // Ephemeral containers.
    if resolved.iter().any(|(_, k, h)| {
        [network_latency::KIND, container_kill::KIND].contains(k)
            || (*k == dns_failure::KIND && !h.pods.is_empty())
    }) {
        if let Err(e) = ephemeral::ensure_supported(shared).await {
            findings.push(Finding {
                severity: Severity::Error,
                message: e.to_string(),
            });
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn targets_split_back_into_objects() {
        let h = parse_targets(&[
            "pod shop/web-1".into(),
            "node n1".into(),
            "configmap kube-system/coredns".into(),
        ]);
        assert!(h.pods.contains(&("shop".into(), "web-1".into())));
        assert!(h.nodes.contains("n1"));
        assert!(h
            .configmaps
            .contains(&("kube-system".into(), "coredns".into())));
    }

    #[test]
    fn label_selectors_evaluate_like_the_api_server() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let mut sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: None,
        };
        assert!(selector_matches(&sel, &labels));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "Exists".into(),
            values: None,
        }]);
        assert!(!selector_matches(&sel, &labels));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "app".into(),
            operator: "NotIn".into(),
            values: Some(vec!["api".into()]),
        }]);
        assert!(selector_matches(&sel, &labels));
        assert!(selector_matches(&LabelSelector::default(), &labels));
    }

    #[test]
    fn drain_needs_eviction_and_node_patch() {
        let h = parse_targets(&["node n1".into(), "pod shop/web-1".into()]);
        let ps: Vec<String> = permissions_for(node_drain::KIND, &h)
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert!(
            ps.contains(&"patch nodes n1 (cluster-wide)".to_string()),
            "{ps:?}"
        );
        assert!(
            ps.contains(&"create pods/eviction in namespace shop".to_string()),
            "{ps:?}"
        );
    }
}
