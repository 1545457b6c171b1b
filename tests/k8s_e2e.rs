//! The Kubernetes target against a real API server named by `GAMEDAY_E2E_KUBECONFIG`
//! (`.ci/run` brings up k8s-local; the kind workflow uses kind; docs/kubernetes.md says how
//! to point it at any cluster). Each test prints a loud SKIPPED line when it is unset.
//!
//! What runs here for real: pod_kill in every mode with the ReplicaSet replacing pods,
//! selection (labels, fields, annotations, names) and protected namespaces, node_drain with
//! a PodDisruptionBudget blocking then allowing (and a drain that times out leaving no
//! cordon), the CoreDNS Corefile patch and its byte-exact restore (also from the ledger
//! record in a fresh target), context pinning, and the preflight. Ephemeral-container faults
//! cannot run on a 1.20 server: here we check that preflight and inject refuse them cleanly.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use gameday::targets::kubernetes::probe::{workload_ready, RestartBaseline};
use gameday::targets::kubernetes::spec::{KubernetesConfig, PodRestartsProbe, WorkloadReadyProbe};
use gameday::targets::kubernetes::{KubeFaultSpec, KubernetesTarget};
use gameday::targets::{Fault, Severity, Target, TargetError};
use serde_json::{json, Value};

use crate::support::k8s_local::{setup, wait_until, E2e};

fn fault(t: &KubernetesTarget, kind: &str, spec: Value) -> Box<dyn Fault> {
    t.fault(kind, KubeFaultSpec::from_kind(kind, spec).unwrap())
}

fn deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(120)
}

fn web_selector(e: &E2e) -> Value {
    json!({"namespaces": [e.ns], "label_selectors": {"app": "web"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_pod_kill_every_mode_and_the_replicaset_replaces_pods() {
    let Some(e) = setup("pod_kill_modes") else {
        return;
    };
    e.deploy("web", 4, None);
    let t = e.target(json!({})).await;
    t.check_reachable().await.unwrap();
    let probe: WorkloadReadyProbe =
        serde_json::from_value(json!({"kind": "deployment", "namespace": e.ns, "name": "web"}))
            .unwrap();
    let restarts: PodRestartsProbe =
        serde_json::from_value(json!({"selector": web_selector(&e)})).unwrap();
    let baseline = RestartBaseline::take(t.shared(), &restarts).await.unwrap();
    for (mode, expect) in [
        (json!({"mode": "one"}), 1..=1),
        (json!({"mode": "fixed", "value": 3}), 3..=3),
        (json!({"mode": "fixed_percent", "value": 50}), 2..=2),
        (json!({"mode": "random_max_percent", "value": 50}), 1..=2),
        (json!({"mode": "all", "grace_period": "0s"}), 4..=4),
    ] {
        let mut spec = json!({"selector": web_selector(&e)});
        for (k, v) in mode.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let before: BTreeSet<String> = e.pods("web").into_iter().map(|p| p.1).collect();
        let f = fault(&t, "pod_kill", spec);
        let p = f.prepare().await.unwrap();
        assert!(p.irreversible);
        let victims: Vec<String> = p.undo["pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["uid"].as_str().unwrap().to_string())
            .collect();
        assert!(
            expect.contains(&victims.len()),
            "mode {mode}: {} victims",
            victims.len()
        );
        assert!(victims.iter().all(|v| before.contains(v)));
        f.inject(&p, deadline()).await.unwrap();
        // The victims are gone and the ReplicaSet has replaced them with new, ready pods.
        wait_until(
            &format!("replacement after {mode}"),
            Duration::from_secs(60),
            || {
                let now = e.pods("web");
                now.len() == 4
                    && now.iter().all(|x| x.3)
                    && !now.iter().any(|x| victims.contains(&x.1))
            },
        );
        assert!(
            workload_ready(t.shared(), &probe).await.unwrap().ok || {
                // The Deployment's status may lag the pods by a moment.
                tokio::time::sleep(Duration::from_secs(2)).await;
                workload_ready(t.shared(), &probe).await.unwrap().ok
            }
        );
        t.revert("pod_kill", &p.undo).await.unwrap();
    }
    let r = baseline.read(t.shared(), &restarts).await.unwrap();
    assert!(r.ok, "{}", r.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_selection_by_annotation_name_field_and_protected_namespaces() {
    let Some(e) = setup("selection") else { return };
    e.deploy("web", 3, None);
    let pods = e.pods("web");
    let chosen = &pods[1].0;
    e.kubectl(&["annotate", "pod", "-n", &e.ns, chosen, "gameday/victim=yes"]);
    let t = e.target(json!({})).await;

    let f = fault(
        &t,
        "pod_kill",
        json!({"selector": {"namespaces": [e.ns], "annotation_selectors": {"gameday/victim": "yes"}, "field_selectors": {"status.phase": "Running"}}, "mode": "all"}),
    );
    let r = f.resolve().await.unwrap();
    assert_eq!(r.targets, [format!("pod {}/{chosen}", e.ns)]);
    assert_eq!(r.eligible, 1);

    let f = fault(
        &t,
        "pod_kill",
        json!({"selector": {"namespaces": [e.ns], "names": [pods[0].0, pods[2].0]}, "mode": "all"}),
    );
    let r = f.resolve().await.unwrap();
    assert_eq!(r.targets.len(), 2);
    assert!(!r.targets.iter().any(|x| x.ends_with(chosen.as_str())));

    let f = fault(
        &t,
        "pod_kill",
        json!({"selector": {"namespaces": [e.ns], "expression_selector": "app in (web)"}, "mode": "all", "max_targets": 2}),
    );
    let err = f.resolve().await.unwrap_err();
    assert!(err.to_string().contains("more than max_targets 2"), "{err}");

    // CoreDNS's pods live in kube-system: protected unless the scenario allows it.
    let coredns = json!({"selector": {"label_selectors": {"k8s-app": "kube-dns"}}, "mode": "all"});
    let err = fault(&t, "pod_kill", coredns.clone())
        .resolve()
        .await
        .unwrap_err();
    assert!(matches!(err, TargetError::Selection { .. }), "{err}");
    assert!(
        err.to_string().contains("protected namespace kube-system"),
        "{err}"
    );
    let allowed = e.target(json!({"allow_protected_namespaces": true})).await;
    let r = fault(&allowed, "pod_kill", coredns)
        .resolve()
        .await
        .unwrap();
    assert!(
        r.targets
            .iter()
            .all(|x| x.starts_with("pod kube-system/coredns-")),
        "{:?}",
        r.targets
    );
    assert!(!r.targets.is_empty());
    // Extra protected namespaces from the scenario.
    let extra = e.target(json!({"protected_namespaces": [e.ns]})).await;
    let err = fault(&extra, "pod_kill", json!({"selector": web_selector(&e)}))
        .resolve()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("protected namespace"), "{err}");
}

#[tokio::test]
async fn e2e_context_pinning_stops_a_mismatch_unless_yes() {
    let Some(e) = setup("context") else { return };
    let cfg: KubernetesConfig =
        serde_json::from_value(json!({"context": "production", "kubeconfig": e.kubeconfig}))
            .unwrap();
    let err = KubernetesTarget::connect(cfg.clone(), false)
        .await
        .err()
        .expect("mismatch must stop");
    let msg = err.to_string();
    assert!(
        msg.contains("`production`")
            && msg.contains(&format!("`{}`", e.context))
            && msg.contains("--yes"),
        "{msg}"
    );
    let t = KubernetesTarget::connect(cfg, true).await.unwrap();
    assert_eq!(t.context(), e.context);
    t.check_reachable().await.unwrap();
}

/// A node that runs no pod of a protected namespace (pub for the CLI tests) (other than DaemonSet pods, which a
/// drain leaves alone).
pub fn free_node(e: &E2e) -> String {
    let pods = e.get_json(&["pods", "-A"]);
    let busy: BTreeSet<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["namespace"]
                .as_str()
                .is_some_and(|n| n.starts_with("kube-"))
        })
        .filter(|p| {
            !p["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["kind"] == "DaemonSet")
        })
        .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
        .collect();
    let nodes = e.get_json(&["nodes"]);
    nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["spec"]["unschedulable"] != true)
        .filter(|n| n["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()))
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .find(|n| !busy.contains(n))
        .expect("a schedulable node without kube-system pods")
}

fn pdb(e: &E2e, min_available: u32) -> Value {
    let v1 = e
        .kubectl(&["api-versions"])
        .lines()
        .any(|l| l == "policy/v1");
    json!({
        "apiVersion": if v1 { "policy/v1" } else { "policy/v1beta1" },
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "db-pdb", "namespace": e.ns},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": "db"}}}
    })
}

pub fn unschedulable(e: &E2e, node: &str) -> bool {
    e.get_json(&["node", node])["spec"]["unschedulable"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_node_drain_waits_for_the_pdb_then_evicts_and_revert_uncordons() {
    let Some(e) = setup("node_drain") else { return };
    let node = free_node(&e);
    e.deploy("db", 2, Some(&node));
    e.apply(&pdb(&e, 2));
    wait_until("pdb status", Duration::from_secs(30), || {
        e.get_json(&["pdb", "-n", &e.ns, "db-pdb"])["status"]["observedGeneration"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    let on_node: Vec<String> = e
        .pods("db")
        .into_iter()
        .filter(|p| p.2 == node)
        .map(|p| p.1)
        .collect();
    assert!(!on_node.is_empty(), "the db pods prefer {node}");
    let t = e.target(json!({})).await;
    let spec = json!({"selector": {"names": [node]}, "mode": "all", "eviction_timeout": "60s"});

    // Preflight sees the budget the drain will wait on.
    let f = fault(&t, "node_drain", spec.clone());
    let findings = t.preflight(&[f.as_ref()]).await.unwrap();
    assert!(
        findings.iter().any(|x| x.severity == Severity::Warning
            && x.message.contains("db-pdb")
            && x.message.contains("429")),
        "{findings:?}"
    );
    assert!(
        !findings.iter().any(|x| x.severity == Severity::Error),
        "{findings:?}"
    );

    let p = f.prepare().await.unwrap();
    assert!(p.targets.contains(&format!("node {node}")));
    let inject = tokio::spawn(async move {
        let r = f.inject(&p, deadline()).await;
        (r, p)
    });
    // Cordoned, but the budget (minAvailable 2 of 2) refuses every eviction.
    wait_until("cordon", Duration::from_secs(20), || {
        unschedulable(&e, &node)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!inject.is_finished(), "the drain must wait on the budget");
    let still: Vec<String> = e
        .pods("db")
        .into_iter()
        .filter(|p| p.2 == node)
        .map(|p| p.1)
        .collect();
    assert_eq!(
        still, on_node,
        "nothing is evicted while the budget refuses"
    );
    // Relax the budget: the retried evictions go through.
    e.apply(&pdb(&e, 1));
    let (r, p) = tokio::time::timeout(Duration::from_secs(90), inject)
        .await
        .expect("drain finishes")
        .unwrap();
    r.unwrap();
    assert!(
        e.pods("db").iter().all(|x| x.2 != node),
        "no db pod left on {node}"
    );
    e.wait_ready("db", 2);
    assert!(unschedulable(&e, &node));
    // Revert from the ledger record in a fresh target (as `gameday recover` would).
    let fresh = KubernetesTarget::from_ledger_config(&t.ledger_config())
        .await
        .unwrap();
    fresh.revert("node_drain", &p.undo).await.unwrap();
    assert!(!unschedulable(&e, &node));
    fresh.revert("node_drain", &p.undo).await.unwrap();
    assert!(!unschedulable(&e, &node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_node_drain_blocked_past_its_timeout_fails_and_leaves_no_cordon() {
    let Some(e) = setup("drain_timeout") else {
        return;
    };
    let node = free_node(&e);
    e.deploy("db", 2, Some(&node));
    e.apply(&pdb(&e, 2));
    assert!(e.pods("db").iter().any(|p| p.2 == node));
    let t = e.target(json!({})).await;
    let f = fault(
        &t,
        "node_drain",
        json!({"selector": {"names": [node]}, "eviction_timeout": "3s"}),
    );
    let p = f.prepare().await.unwrap();
    let err = f.inject(&p, deadline()).await.unwrap_err();
    assert!(err.to_string().contains("a PodDisruptionBudget"), "{err}");
    assert!(
        !unschedulable(&e, &node),
        "a failed drain uncordons what it cordoned"
    );
    assert_eq!(e.pods("db").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_coredns_corefile_patch_and_byte_exact_restore() {
    let Some(e) = setup("coredns") else { return };
    let read = || {
        e.get_json(&["configmap", "-n", "kube-system", "coredns"])["data"]["Corefile"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let original = read();
    let t = e.target(json!({})).await;
    let f = fault(
        &t,
        "dns_failure",
        json!({"names": ["payments.shop.svc.cluster.local", "*.example.com"], "rcode": "nxdomain"}),
    );
    let r = f.resolve().await.unwrap();
    assert_eq!(r.targets, ["configmap kube-system/coredns"]);
    let p = f.prepare().await.unwrap();
    assert_eq!(p.undo["original"].as_str().unwrap(), original);
    f.inject(&p, deadline()).await.unwrap();
    let patched = read();
    assert_eq!(patched, p.undo["patched"].as_str().unwrap());
    assert!(
        patched.contains(
            "template ANY ANY payments.shop.svc.cluster.local {\n        rcode NXDOMAIN\n    }"
        ),
        "{patched}"
    );
    // A second patch over the first is refused rather than stacked.
    let again = fault(&t, "dns_failure", json!({"names": ["x.example.org"]}));
    assert!(again
        .prepare()
        .await
        .unwrap_err()
        .to_string()
        .contains("gameday recover"));
    // Revert from the ledger alone, in a fresh target: byte for byte.
    let fresh = KubernetesTarget::from_ledger_config(&t.ledger_config())
        .await
        .unwrap();
    fresh.revert("dns_failure", &p.undo).await.unwrap();
    assert_eq!(read().as_bytes(), original.as_bytes());
    fresh.revert("dns_failure", &p.undo).await.unwrap();
    assert_eq!(read().as_bytes(), original.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_preflight_checks_rbac_node_local_dns_overlaps_and_ephemeral_support() {
    let Some(e) = setup("preflight") else { return };
    e.deploy("web", 2, None);
    let t = e.target(json!({})).await;
    let kill = fault(
        &t,
        "pod_kill",
        json!({"selector": web_selector(&e), "mode": "all"}),
    );
    let kill2 = fault(
        &t,
        "pod_kill",
        json!({"selector": web_selector(&e), "mode": "all"}),
    );
    let dns = fault(&t, "dns_failure", json!({"names": ["a.example.com"]}));
    let netem = fault(
        &t,
        "network_latency",
        json!({"selector": web_selector(&e), "latency": "100ms"}),
    );
    e.apply(&json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "node-local-dns", "namespace": "kube-system", "labels": {"k8s-app": "node-local-dns"}},
        "spec": {"selector": {"matchLabels": {"k8s-app": "node-local-dns"}},
                 "template": {"metadata": {"labels": {"k8s-app": "node-local-dns"}},
                              "spec": {"containers": [{"name": "dns", "image": "registry.k8s.io/pause:3.9"}]}}}
    }));
    let findings = t
        .preflight(&[kill.as_ref(), kill2.as_ref(), dns.as_ref(), netem.as_ref()])
        .await;
    e.kubectl(&[
        "delete",
        "daemonset",
        "-n",
        "kube-system",
        "node-local-dns",
        "--wait=false",
    ]);
    let findings = findings.unwrap();
    let has = |sev: Severity, s: &str| {
        findings
            .iter()
            .any(|f| f.severity == sev && f.message.contains(s))
    };
    assert!(has(Severity::Warning, "overlap"), "{findings:?}");
    assert!(has(Severity::Warning, "node-local-dns"), "{findings:?}");
    assert!(
        has(Severity::Warning, "all 2 ready pod(s) of ReplicaSet"),
        "{findings:?}"
    );
    let version = e.kubectl(&["version", "-o", "json"]);
    let minor: u32 = serde_json::from_str::<Value>(&version).unwrap()["serverVersion"]["minor"]
        .as_str()
        .unwrap()
        .trim_end_matches('+')
        .parse()
        .unwrap();
    if minor < 23 {
        assert!(has(Severity::Error, "ephemeral containers"), "{findings:?}");
        // And inject refuses before touching a pod.
        let p = netem.prepare().await.unwrap();
        let err = netem.inject(&p, deadline()).await.unwrap_err();
        assert!(err.to_string().contains("1.23 or newer"), "{err}");
    }
    // The admin context may do everything: no RBAC finding.
    assert!(
        !findings
            .iter()
            .any(|f| f.message.contains("lacks permissions")),
        "{findings:?}"
    );

    // A service account that may only list pods lacks delete.
    e.apply(&json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "viewer", "namespace": e.ns}}));
    e.apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "viewer", "namespace": e.ns},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}));
    e.apply(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "viewer", "namespace": e.ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": e.ns}]}));
    let viewer = viewer_kubeconfig(&e);
    let cfg: KubernetesConfig = serde_json::from_value(
        json!({"context": "viewer", "kubeconfig": viewer.path().to_str().unwrap()}),
    )
    .unwrap();
    let vt = KubernetesTarget::connect(cfg, false).await.unwrap();
    let vkill = fault(
        &vt,
        "pod_kill",
        json!({"selector": web_selector(&e), "mode": "one"}),
    );
    let findings = vt.preflight(&[vkill.as_ref()]).await.unwrap();
    let denied: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(denied.len(), 1, "{findings:?}");
    assert!(
        denied[0].contains(&format!("delete pods in namespace {}", e.ns)),
        "{denied:?}"
    );
    assert!(!denied[0].contains("list pods"), "{denied:?}");
}

/// A kubeconfig for the `viewer` service account: the cluster entry of the admin
/// kubeconfig, and the service account's token (read from its token Secret on servers
/// that still create one, else requested through the TokenRequest API).
fn viewer_kubeconfig(e: &E2e) -> tempfile::NamedTempFile {
    let admin: Value =
        serde_json::from_str(&e.kubectl(&["config", "view", "--raw", "--minify", "-o", "json"]))
            .unwrap();
    let cluster = admin["clusters"][0]["cluster"].clone();
    let mut token = String::new();
    wait_until("service account token", Duration::from_secs(30), || {
        let sa = e.get_json(&["serviceaccount", "-n", &e.ns, "viewer"]);
        if let Some(secret) = sa["secrets"][0]["name"].as_str() {
            let s = e.get_json(&["secret", "-n", &e.ns, secret]);
            if let Some(t) = s["data"]["token"].as_str() {
                token = String::from_utf8(decode_b64(t)).unwrap();
                return true;
            }
            return false;
        }
        // 1.24+: no token Secret; ask for a short-lived token.
        let out = std::process::Command::new("kubectl")
            .args([
                "--kubeconfig",
                &e.kubeconfig,
                "create",
                "token",
                "viewer",
                "-n",
                &e.ns,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            token = String::from_utf8(out.stdout).unwrap().trim().to_string();
            return true;
        }
        false
    });
    let kc = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "viewer",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "viewer", "user": {"token": token}}],
        "contexts": [{"name": "viewer", "context": {"cluster": "c", "user": "viewer", "namespace": e.ns}}]
    });
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), kc.to_string()).unwrap();
    f
}

/// Standard base64 decoding for one Secret value (the test avoids a dependency for it).
fn decode_b64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Whether the cluster has real kubelets (kind, a real cluster) rather than k8s-local's
/// fake ones, which serve no port-forward, exec or logs.
fn real_kubelets(e: &E2e) -> bool {
    let nodes = e.get_json(&["nodes"]);
    !nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["metadata"]["labels"]["k8s-local/fake"] == "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_port_forward_listens_for_the_run_and_reaches_a_service_pod() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(e) = setup("port_forward") else {
        return;
    };
    let real = real_kubelets(&e);
    if real {
        e.apply(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": e.ns},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27-alpine", "ports": [{"containerPort": 80, "name": "http"}]}]}}}
        }));
        e.wait_ready("web", 2);
    } else {
        e.deploy("web", 2, None);
    }
    e.apply(&json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": e.ns},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080, "targetPort": 80}]}}));
    wait_until("endpoints", Duration::from_secs(30), || {
        e.get_json(&["endpoints", "-n", &e.ns, "web"])["subsets"][0]["addresses"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = e.target(json!({"port_forwards": [{"namespace": e.ns, "service": "web", "port": 8080, "local_port": local}]})).await;
    t.start().await.unwrap();
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .expect("the forward listens");
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut got)).await;
    let got = String::from_utf8_lossy(&got).to_string();
    if real {
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    } else {
        // k8s-local has no kubelet to serve port-forward: the API server refuses, and the
        // forward closes the connection instead of leaving the client hanging.
        assert!(
            read.is_ok(),
            "the connection must be closed, not left hanging"
        );
        assert!(got.is_empty(), "{got}");
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"NOTE: port-forward traffic not checked: k8s-local has no kubelet (kind covers it)\n",
        );
    }
    t.shutdown().await.unwrap();
    // Stopped: the port is free again.
    wait_until("the listener to close", Duration::from_secs(5), || {
        std::net::TcpListener::bind(("127.0.0.1", local)).is_ok()
    });
}
