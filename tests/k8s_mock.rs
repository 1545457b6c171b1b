//! The Kubernetes target against a scripted API server (the `kube` crate's tower-test
//! pattern): every request each fault makes (verbs, paths, query, bodies), pagination,
//! evictions refused by a PodDisruptionBudget then retried, API errors mid-fault that must
//! leave nothing injected, and reverts from the ledger record alone.

use std::time::{Duration, SystemTime};

use gameday::targets::kubernetes::spec::KubernetesConfig;
use gameday::targets::kubernetes::{KubeFaultSpec, KubernetesTarget};
use gameday::targets::{Fault, Severity, Target, TargetError};
use serde_json::{json, Value};

use crate::support::k8s_mock::{list, node, pod, serve, status_ok, step, version, Step};

fn target(client: kube::Client) -> KubernetesTarget {
    let config: KubernetesConfig = serde_json::from_value(json!({"context": "mock"})).unwrap();
    KubernetesTarget::with_client(client, config, "mock".into())
}

fn fault(t: &KubernetesTarget, kind: &str, spec: Value) -> Box<dyn Fault> {
    t.fault("f", KubeFaultSpec::from_kind(kind, spec).unwrap())
}

fn deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

fn web_pods(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| pod("shop", &format!("web-{i}"), json!({"app": "web"})))
        .collect()
}

fn list_pods_shop(items: Vec<Value>) -> Step {
    step(
        "GET",
        "/api/v1/namespaces/shop/pods",
        list("PodList", items, None),
    )
    .q("labelSelector", "app=web")
    .q("limit", "500")
}

async fn resolve_count(mode: Value, n: usize) -> Result<usize, TargetError> {
    let mut spec = json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}});
    for (k, v) in mode.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let mock = serve(vec![list_pods_shop(web_pods(n))]);
    let t = target(mock.client.clone());
    let f = fault(&t, "pod_kill", spec);
    let r = f.resolve().await;
    drop((f, t));
    mock.done().await;
    let r = r?;
    assert_eq!(r.eligible, n);
    assert!(r.targets.iter().all(|t| t.starts_with("pod shop/web-")));
    Ok(r.targets.len())
}

#[tokio::test]
async fn every_selection_mode_resolves_its_count() {
    assert_eq!(resolve_count(json!({"mode": "one"}), 5).await.unwrap(), 1);
    assert_eq!(resolve_count(json!({"mode": "all"}), 5).await.unwrap(), 5);
    assert_eq!(
        resolve_count(json!({"mode": "fixed", "value": 2}), 5)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        resolve_count(json!({"mode": "fixed_percent", "value": 40}), 5)
            .await
            .unwrap(),
        2
    );
    let r = resolve_count(json!({"mode": "random_max_percent", "value": 60}), 5)
        .await
        .unwrap();
    assert!((1..=3).contains(&r), "random_max_percent hit {r}");
    let e = resolve_count(json!({"mode": "all", "max_targets": 3}), 5)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than max_targets 3"), "{e}");
}

/// `max_targets` bounds how many matching pods are out at once: a pod already not ready
/// (the previous round of `every:`, a crash loop) or terminating counts, and is not a victim.
#[tokio::test]
async fn the_cap_counts_pods_already_down_and_never_picks_them() {
    let mut pods = web_pods(4);
    pods[1]["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    pods[2]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let spec = |value: u32| {
        json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}},
               "mode": "fixed", "value": value, "max_targets": 3})
    };
    // Two down + one more = 3: allowed, and the victim is one of the two serving pods.
    let mock = serve(vec![list_pods_shop(pods.clone())]);
    let t = target(mock.client.clone());
    let r = fault(&t, "pod_kill", spec(1)).resolve().await.unwrap();
    drop(t);
    mock.done().await;
    assert_eq!(r.eligible, 2, "{r:?}");
    assert_eq!(r.targets.len(), 1);
    assert!(
        r.targets[0] == "pod shop/web-0" || r.targets[0] == "pod shop/web-3",
        "{r:?}"
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("1 matching pod(s) not ready")),
        "{r:?}"
    );
    // Two down + two more = 4 > 3: refused, naming what was down already.
    let mock = serve(vec![list_pods_shop(pods)]);
    let t = target(mock.client.clone());
    let e = fault(&t, "pod_kill", spec(2)).resolve().await.unwrap_err();
    drop(t);
    mock.done().await;
    assert!(
        e.to_string()
            .contains("would hit 2 objects while 2 already are down or not ready (4 out at once), more than max_targets 3"),
        "{e}"
    );
}

#[tokio::test]
async fn lists_follow_continue_tokens_and_skip_protected_namespaces() {
    let mut system = pod("kube-system", "coredns-1", json!({"app": "web"}));
    system["metadata"]["ownerReferences"] = json!([]);
    let mock = serve(vec![
        step(
            "GET",
            "/api/v1/pods",
            list(
                "PodList",
                vec![web_pods(1)[0].clone(), system],
                Some("page2"),
            ),
        )
        .q("labelSelector", "app=web")
        .q("limit", "500"),
        step(
            "GET",
            "/api/v1/pods",
            list(
                "PodList",
                vec![pod("other", "web-9", json!({"app": "web"}))],
                None,
            ),
        )
        .q("continue", "page2")
        .q("labelSelector", "app=web"),
    ]);
    let t = target(mock.client.clone());
    let f = fault(
        &t,
        "pod_kill",
        json!({"selector": {"label_selectors": {"app": "web"}}, "mode": "all"}),
    );
    let r = f.resolve().await.unwrap();
    drop((f, t));
    mock.done().await;
    assert_eq!(r.targets, ["pod other/web-9", "pod shop/web-0"]);
    assert_eq!(r.eligible, 2);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("protected namespace kube-system")),
        "{:?}",
        r.notes
    );
}

#[tokio::test]
async fn pod_kill_deletes_with_grace_period_and_uid_precondition() {
    let mock = serve(vec![
        list_pods_shop(web_pods(2)),
        step(
            "DELETE",
            "/api/v1/namespaces/shop/pods/web-0",
            pod("shop", "web-0", json!({})),
        ),
        // The second pod is already gone: not an error.
        step("DELETE", "/api/v1/namespaces/shop/pods/web-1", json!({})).fail(404, "NotFound"),
    ]);
    let t = target(mock.client.clone());
    let f = fault(
        &t,
        "pod_kill",
        json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}, "mode": "all", "grace_period": "5s"}),
    );
    let p = f.prepare().await.unwrap();
    assert!(p.irreversible);
    assert_eq!(p.targets, ["pod shop/web-0", "pod shop/web-1"]);
    f.inject(&p, deadline()).await.unwrap();
    // Revert of an irreversible fault makes no request.
    t.revert("pod_kill", &p.undo).await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    assert_eq!(seen[1].body["gracePeriodSeconds"], 5);
    assert_eq!(seen[1].body["preconditions"]["uid"], "uid-web-0");
}

fn drain_steps_prepare() -> Vec<Step> {
    vec![
        step(
            "GET",
            "/api/v1/nodes",
            list("NodeList", vec![node("node-1", false)], None),
        )
        .q("labelSelector", "pool=a"),
        step("GET", "/api/v1/pods", list("PodList", web_pods(1), None))
            .q("fieldSelector", "spec.nodeName=node-1"),
    ]
}

fn drain_spec() -> Value {
    json!({"selector": {"label_selectors": {"pool": "a"}}, "mode": "one", "eviction_timeout": "30s"})
}

#[tokio::test]
async fn node_drain_cordons_evicts_through_v1beta1_retrying_a_pdb_refusal_then_uncordons() {
    let mut steps = drain_steps_prepare();
    steps.extend([
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", true)),
        step("GET", "/api/v1/pods", list("PodList", web_pods(1), None)).q("fieldSelector", "spec.nodeName=node-1"),
        // A 1.20 server: no policy/v1.
        step("GET", "/apis/policy", json!({"kind": "APIGroup", "name": "policy", "versions": [{"groupVersion": "policy/v1beta1", "version": "v1beta1"}]})),
        step("POST", "/api/v1/namespaces/shop/pods/web-0/eviction", json!({})).fail(429, "TooManyRequests"),
        step("POST", "/api/v1/namespaces/shop/pods/web-0/eviction", status_ok()).status(201),
        // Revert.
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", false)),
        // Second revert: idempotent, same request, same outcome.
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", false)),
    ]);
    let mock = serve(steps);
    let t = target(mock.client.clone());
    let f = fault(&t, "node_drain", drain_spec());
    let p = f.prepare().await.unwrap();
    assert!(!p.irreversible);
    assert_eq!(p.targets, ["node node-1"]);
    assert_eq!(p.undo["pods"][0]["name"], "web-0");
    f.inject(&p, deadline()).await.unwrap();
    t.revert("node_drain", &p.undo).await.unwrap();
    t.revert("node_drain", &p.undo).await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    assert_eq!(seen[2].body, json!({"spec": {"unschedulable": true}}));
    assert_eq!(
        seen[2].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let ev = &seen[5].body;
    assert_eq!(ev["apiVersion"], "policy/v1beta1");
    assert_eq!(ev["kind"], "Eviction");
    assert_eq!(
        ev["metadata"],
        json!({"name": "web-0", "namespace": "shop"})
    );
    assert_eq!(ev["deleteOptions"]["preconditions"]["uid"], "uid-web-0");
    assert_eq!(seen[7].body, json!({"spec": {"unschedulable": false}}));
}

#[tokio::test]
async fn node_drain_uses_policy_v1_when_served_and_keeps_prior_cordons() {
    let mut steps = vec![
        step(
            "GET",
            "/api/v1/nodes",
            list("NodeList", vec![node("node-1", true)], None),
        ),
        step("GET", "/api/v1/pods", list("PodList", web_pods(1), None)),
    ];
    steps.extend([
        // Already cordoned before the run: no cordon patch, and no uncordon on revert.
        step("GET", "/api/v1/pods", list("PodList", web_pods(1), None)),
        step("GET", "/apis/policy", json!({"kind": "APIGroup", "name": "policy", "versions": [{"groupVersion": "policy/v1", "version": "v1"}, {"groupVersion": "policy/v1beta1", "version": "v1beta1"}]})),
        step("POST", "/api/v1/namespaces/shop/pods/web-0/eviction", status_ok()).status(201),
    ]);
    let mock = serve(steps);
    let t = target(mock.client.clone());
    let f = fault(&t, "node_drain", json!({"selector": {}, "mode": "all"}));
    let p = f.prepare().await.unwrap();
    f.inject(&p, deadline()).await.unwrap();
    t.revert("node_drain", &p.undo).await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    assert_eq!(seen[4].body["apiVersion"], "policy/v1");
}

#[tokio::test]
async fn node_drain_failing_midway_uncordons_what_it_cordoned() {
    let mut steps = drain_steps_prepare();
    steps.extend([
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", true)),
        step("GET", "/api/v1/pods", json!({})).fail(500, "InternalError"),
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", false)),
    ]);
    let mock = serve(steps);
    let t = target(mock.client.clone());
    let f = fault(&t, "node_drain", drain_spec());
    let p = f.prepare().await.unwrap();
    let e = f.inject(&p, deadline()).await.unwrap_err();
    assert!(e.to_string().contains("list pods on node node-1"), "{e}");
    drop((f, t));
    let seen = mock.done().await;
    assert_eq!(seen[4].body, json!({"spec": {"unschedulable": false}}));
}

const COREFILE: &str = ".:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n    }\n    forward . /etc/resolv.conf\n    reload\n}\n";

fn coredns_cm(corefile: &str, rv: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "kube-system", "name": "coredns", "resourceVersion": rv}, "data": {"Corefile": corefile}})
}

const CM: &str = "/api/v1/namespaces/kube-system/configmaps/coredns";

#[tokio::test]
async fn dns_failure_cluster_patches_the_corefile_and_restores_it_byte_for_byte() {
    let spec = json!({"scope": "cluster", "names": ["payments.shop.svc.cluster.local"], "rcode": "servfail"});
    // Compute the patched text the way the fault will, through a first prepare.
    let mock = serve(vec![
        step("GET", CM, coredns_cm(COREFILE, "10")),
        step("GET", CM, coredns_cm(COREFILE, "10")),
    ]);
    let t = target(mock.client.clone());
    let f = fault(&t, "dns_failure", spec.clone());
    let p = f.prepare().await.unwrap();
    drop((f, t));
    mock.done().await;
    let patched = p.undo["patched"].as_str().unwrap().to_string();
    assert_eq!(p.undo["original"], COREFILE);
    assert!(patched.contains(
        "template ANY ANY payments.shop.svc.cluster.local {\n        rcode SERVFAIL\n    }"
    ));

    let mock = serve(vec![
        step("GET", CM, coredns_cm(COREFILE, "10")),
        step("PATCH", CM, coredns_cm(&patched, "11")),
        // Revert: the patched text is there, so the original goes back.
        step("GET", CM, coredns_cm(&patched, "11")),
        step("PATCH", CM, coredns_cm(COREFILE, "12")),
        // Second revert finds the original and writes nothing.
        step("GET", CM, coredns_cm(COREFILE, "12")),
    ]);
    let t = target(mock.client.clone());
    let f = fault(&t, "dns_failure", spec);
    f.inject(&p, deadline()).await.unwrap();
    t.revert("dns_failure", &p.undo).await.unwrap();
    t.revert("dns_failure", &p.undo).await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    assert_eq!(seen[1].body["data"]["Corefile"], patched);
    assert_eq!(seen[1].body["metadata"]["resourceVersion"], "10");
    assert_eq!(
        seen[3].body["data"]["Corefile"]
            .as_str()
            .unwrap()
            .as_bytes(),
        COREFILE.as_bytes()
    );
    assert_eq!(seen[3].body["metadata"]["resourceVersion"], "11");
}

#[tokio::test]
async fn dns_failure_conflict_leaves_the_corefile_alone_and_foreign_edits_are_not_overwritten() {
    let spec = json!({"names": ["a.example.com"]});
    let mock = serve(vec![
        step("GET", CM, coredns_cm(COREFILE, "10")),
        step("GET", CM, coredns_cm(COREFILE, "10")),
        step("GET", CM, coredns_cm(COREFILE, "10")),
        step("PATCH", CM, json!({})).fail(409, "Conflict"),
        // Revert after the failed inject: the Corefile is the original, nothing to do.
        step("GET", CM, coredns_cm(COREFILE, "13")),
        // Someone else rewrote it: revert refuses rather than clobber their edit.
        step(
            "GET",
            CM,
            coredns_cm(".:53 {\n    forward . 8.8.8.8\n}\n", "14"),
        ),
    ]);
    let t = target(mock.client.clone());
    let f = fault(&t, "dns_failure", spec);
    let p = f.prepare().await.unwrap();
    let e = f.inject(&p, deadline()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("patch configmap kube-system/coredns"),
        "{e}"
    );
    t.revert("dns_failure", &p.undo).await.unwrap();
    let e = t.revert("dns_failure", &p.undo).await.unwrap_err();
    assert!(e.to_string().contains("someone else changed it"), "{e}");
    drop((f, t));
    mock.done().await;
}

fn pod_with_ephemeral(name: &str, ephemeral: &[&str]) -> Value {
    let mut p = pod("shop", name, json!({"app": "web"}));
    p["spec"]["ephemeralContainers"] = json!(ephemeral
        .iter()
        .map(|n| json!({"name": n, "image": "x"}))
        .collect::<Vec<_>>());
    p
}

#[tokio::test]
async fn network_latency_adds_a_netem_container_and_reverts_with_a_cleanup_container() {
    let mock = serve(vec![
        list_pods_shop(web_pods(1)),
        step("GET", "/version", version("30")),
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod("shop", "web-0", json!({})),
        ),
        step(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers",
            pod("shop", "web-0", json!({})),
        ),
    ]);
    let t = target(mock.client.clone());
    let f = fault(
        &t,
        "network_latency",
        json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}, "latency": "120ms", "jitter": "10ms", "loss_percent": 2.0, "image": "example/tools:1"}),
    );
    let p = f.prepare().await.unwrap();
    f.inject(&p, SystemTime::now() + Duration::from_secs(45))
        .await
        .unwrap();
    drop((f, t));
    let seen = mock.done().await;
    let patch = &seen[3];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    let ec = &patch.body["spec"]["ephemeralContainers"][0];
    let name = p.undo["container"].as_str().unwrap();
    assert_eq!(ec["name"], name);
    assert_eq!(ec["image"], "example/tools:1");
    assert_eq!(
        ec["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN"])
    );
    let script = ec["command"][2].as_str().unwrap();
    assert!(
        script.starts_with(
            "tc qdisc replace dev 'eth0' root netem delay 120ms 10ms loss 2% || exit 1"
        ),
        "{script}"
    );
    assert!(
        script.contains("sleep 45 &") || script.contains("sleep 46 &"),
        "{script}"
    );

    // Revert from the ledger record alone, in a "fresh process": a new target.
    let undo_name = format!("{name}-undo");
    let mock = serve(vec![
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod_with_ephemeral("web-0", &[name]),
        ),
        step(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers",
            pod("shop", "web-0", json!({})),
        ),
        // Again: the cleanup container is there already, nothing is added.
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod_with_ephemeral("web-0", &[name, &undo_name]),
        ),
    ]);
    let t = target(mock.client.clone());
    t.revert("network_latency", &p.undo).await.unwrap();
    t.revert("network_latency", &p.undo).await.unwrap();
    drop(t);
    let seen = mock.done().await;
    let ec = &seen[1].body["spec"]["ephemeralContainers"][0];
    assert_eq!(ec["name"], undo_name);
    assert_eq!(
        ec["command"][2],
        "tc qdisc del dev 'eth0' root 2>/dev/null; true\n"
    );
}

#[tokio::test]
async fn network_latency_error_on_the_second_pod_cleans_up_the_first() {
    // The netem container's name is random per prepare, so the pod that got it is served
    // by name from a shared cell once prepare has chosen it.
    let mock = serve(vec![list_pods_shop(web_pods(2))]);
    let t = target(mock.client.clone());
    let spec = json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}, "mode": "all", "latency": "50ms"});
    let f = fault(&t, "network_latency", spec.clone());
    let p = f.prepare().await.unwrap();
    drop((f, t));
    mock.done().await;
    let name = p.undo["container"].as_str().unwrap().to_string();

    let mock = serve(vec![
        step("GET", "/version", version("29")),
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod("shop", "web-0", json!({})),
        ),
        step(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers",
            pod("shop", "web-0", json!({})),
        ),
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-1",
            pod("shop", "web-1", json!({})),
        ),
        step(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-1/ephemeralcontainers",
            json!({}),
        )
        .fail(403, "Forbidden"),
        // Cleanup before the error returns: web-0 has the netem container, web-1 does not.
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod_with_ephemeral("web-0", &[&name]),
        ),
        step(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers",
            pod("shop", "web-0", json!({})),
        ),
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-1",
            pod("shop", "web-1", json!({})),
        ),
    ]);
    let t = target(mock.client.clone());
    let f = fault(&t, "network_latency", spec);
    let e = f.inject(&p, deadline()).await.unwrap_err();
    assert!(e.to_string().contains("shop/web-1"), "{e}");
    drop((f, t));
    let seen = mock.done().await;
    assert_eq!(
        seen[6].body["spec"]["ephemeralContainers"][0]["name"],
        format!("{name}-undo")
    );
}

#[tokio::test]
async fn ephemeral_faults_refuse_a_1_20_server_before_touching_any_pod() {
    let mock = serve(vec![
        list_pods_shop(web_pods(1)),
        step("GET", "/version", version("20")),
    ]);
    let t = target(mock.client.clone());
    let f = fault(
        &t,
        "network_latency",
        json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}, "latency": "50ms"}),
    );
    let p = f.prepare().await.unwrap();
    let e = f.inject(&p, deadline()).await.unwrap_err();
    assert!(e.to_string().contains("1.23 or newer"), "{e}");
    drop((f, t));
    mock.done().await;
}

#[tokio::test]
async fn dns_failure_pod_scope_drops_queries_with_iptables_and_cleans_up() {
    let mock = serve(vec![
        list_pods_shop(web_pods(1)),
        step("GET", "/version", version("31")),
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod("shop", "web-0", json!({})),
        ),
        step(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers",
            pod("shop", "web-0", json!({})),
        ),
    ]);
    let t = target(mock.client.clone());
    let f = fault(
        &t,
        "dns_failure",
        json!({"scope": "pod", "names": ["payments.example.com"], "selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}}),
    );
    let p = f.prepare().await.unwrap();
    assert_eq!(p.undo["scope"], "pod");
    f.inject(&p, deadline()).await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    let script = seen[3].body["spec"]["ephemeralContainers"][0]["command"][2]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        script.contains("--hex-string '|08|payments|07|example|03|com|00|' -j DROP"),
        "{script}"
    );

    let name = p.undo["container"].as_str().unwrap().to_string();
    let mock = serve(vec![
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod_with_ephemeral("web-0", &[&name]),
        ),
        step(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers",
            pod("shop", "web-0", json!({})),
        ),
    ]);
    let t = target(mock.client.clone());
    t.revert("dns_failure", &p.undo).await.unwrap();
    drop(t);
    let seen = mock.done().await;
    assert!(seen[1].body["spec"]["ephemeralContainers"][0]["command"][2]
        .as_str()
        .unwrap()
        .contains("iptables -X GAMEDAY-DNS-"));
}

#[tokio::test]
async fn container_kill_signals_the_target_containers_process_namespace() {
    let mock = serve(vec![
        list_pods_shop(web_pods(1)),
        step("GET", "/version", version("30")),
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod("shop", "web-0", json!({})),
        ),
        step(
            "GET",
            "/api/v1/namespaces/shop/pods/web-0",
            pod("shop", "web-0", json!({})),
        ),
        step(
            "PATCH",
            "/api/v1/namespaces/shop/pods/web-0/ephemeralcontainers",
            pod("shop", "web-0", json!({})),
        ),
    ]);
    let t = target(mock.client.clone());
    let f = fault(
        &t,
        "container_kill",
        json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}}),
    );
    let p = f.prepare().await.unwrap();
    assert!(p.irreversible);
    f.inject(&p, deadline()).await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    let ec = &seen[4].body["spec"]["ephemeralContainers"][0];
    assert_eq!(ec["targetContainerName"], "app");
    assert!(ec["command"][2]
        .as_str()
        .unwrap()
        .starts_with("kill -s TERM 1"));
}

#[tokio::test]
async fn preflight_reports_denied_permissions_and_budgets_a_kill_would_break() {
    let ssar = |allowed: bool| json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}, "status": {"allowed": allowed}});
    let pdb = json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudgetList", "items": [
        {"metadata": {"name": "web-pdb"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}, "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}}
    ]});
    let mock = serve(vec![
        list_pods_shop(web_pods(2)),
        // delete pods, then list pods (sorted by verb): list allowed, delete denied.
        step(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            ssar(false),
        ),
        step(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            ssar(true),
        ),
        step(
            "GET",
            "/api/v1/namespaces/shop/pods",
            list("PodList", web_pods(2), None),
        ),
        step(
            "GET",
            "/apis/policy",
            json!({"kind": "APIGroup", "versions": [{"version": "v1beta1"}]}),
        ),
        step(
            "GET",
            "/apis/policy/v1beta1/namespaces/shop/poddisruptionbudgets",
            pdb,
        ),
    ]);
    let t = target(mock.client.clone());
    let f = fault(
        &t,
        "pod_kill",
        json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}, "mode": "all"}),
    );
    let findings = t.preflight(&[f.as_ref()]).await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    assert_eq!(
        seen[1].body["spec"]["resourceAttributes"],
        json!({"namespace": "shop", "verb": "delete", "group": "", "resource": "pods"})
    );
    let errors: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(errors.len(), 1, "{findings:?}");
    assert!(
        errors[0].contains("delete pods in namespace shop"),
        "{errors:?}"
    );
    let warnings: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("PodDisruptionBudget shop/web-pdb which allows 0")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("all 2 ready pod(s) of ReplicaSet shop/web-rs")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn eviction_in_a_terminating_namespace_is_retried_until_the_pod_is_gone() {
    let mut steps = drain_steps_prepare();
    steps.extend([
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", true)),
        step("GET", "/api/v1/pods", list("PodList", web_pods(1), None)),
        step("GET", "/apis/policy", json!({"kind": "APIGroup", "versions": [{"version": "v1"}]})),
        step("POST", "/api/v1/namespaces/shop/pods/web-0/eviction", json!({}))
            .fail(403, "Forbidden")
            .message("pods \"web-0\" is forbidden: unable to create new content in namespace shop because it is being terminated"),
        // The namespace controller has deleted it meanwhile: 404 is success.
        step("POST", "/api/v1/namespaces/shop/pods/web-0/eviction", json!({})).fail(404, "NotFound"),
    ]);
    let mock = serve(steps);
    let t = target(mock.client.clone());
    let f = fault(&t, "node_drain", drain_spec());
    let p = f.prepare().await.unwrap();
    f.inject(&p, deadline()).await.unwrap();
    drop((f, t));
    mock.done().await;
}

#[tokio::test]
async fn a_plain_forbidden_eviction_fails_the_drain_and_uncordons() {
    let mut steps = drain_steps_prepare();
    steps.extend([
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", true)),
        step("GET", "/api/v1/pods", list("PodList", web_pods(1), None)),
        step(
            "GET",
            "/apis/policy",
            json!({"kind": "APIGroup", "versions": [{"version": "v1"}]}),
        ),
        step(
            "POST",
            "/api/v1/namespaces/shop/pods/web-0/eviction",
            json!({}),
        )
        .fail(403, "Forbidden"),
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", false)),
    ]);
    let mock = serve(steps);
    let t = target(mock.client.clone());
    let f = fault(&t, "node_drain", drain_spec());
    let p = f.prepare().await.unwrap();
    let e = f.inject(&p, deadline()).await.unwrap_err();
    assert!(e.to_string().contains("evict pod shop/web-0"), "{e}");
    drop((f, t));
    mock.done().await;
}

#[tokio::test]
async fn drain_selection_lists_all_pods_once_for_several_nodes_and_skips_daemonsets() {
    let mut ds_pod = pod("shop", "agent-1", json!({}));
    ds_pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds", "controller": true}]);
    let mut on_2 = pod("shop", "web-2", json!({}));
    on_2["spec"]["nodeName"] = json!("node-2");
    let mut sys = pod("kube-system", "coredns-1", json!({}));
    sys["spec"]["nodeName"] = json!("node-3");
    let mock = serve(vec![
        step(
            "GET",
            "/api/v1/nodes",
            list(
                "NodeList",
                vec![
                    node("node-1", false),
                    node("node-2", false),
                    node("node-3", false),
                ],
                None,
            ),
        ),
        step(
            "GET",
            "/api/v1/pods",
            list(
                "PodList",
                vec![web_pods(1)[0].clone(), ds_pod, on_2, sys],
                None,
            ),
        )
        .q("limit", "500"),
    ]);
    let t = target(mock.client.clone());
    let f = fault(&t, "node_drain", json!({"selector": {}, "mode": "all"}));
    let r = f.resolve().await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    assert!(!seen[1].query.contains_key("fieldSelector"));
    assert_eq!(r.targets, ["node node-1", "node node-2"]);
    assert_eq!(r.eligible, 2);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("node node-3 left out") || n.contains("node-3 left out")),
        "{:?}",
        r.notes
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n == "node node-1: 1 pod(s) to evict: shop/web-0"),
        "{:?}",
        r.notes
    );
}

#[tokio::test]
async fn pod_kill_spares_a_pod_replaced_under_the_same_name() {
    let mock = serve(vec![
        list_pods_shop(web_pods(1)),
        // The UID precondition fails: a new pod of the same name (a StatefulSet's) is left alone.
        step("DELETE", "/api/v1/namespaces/shop/pods/web-0", json!({})).fail(409, "Conflict"),
    ]);
    let t = target(mock.client.clone());
    let f = fault(
        &t,
        "pod_kill",
        json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}}),
    );
    let p = f.prepare().await.unwrap();
    f.inject(&p, deadline()).await.unwrap();
    drop((f, t));
    let seen = mock.done().await;
    assert_eq!(seen[1].body["preconditions"]["uid"], "uid-web-0");
}

#[tokio::test]
async fn probes_read_ready_replicas_and_restarts_since_a_baseline() {
    use gameday::targets::kubernetes::probe::{workload_ready, RestartBaseline};
    let deploy = |ready: i32| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 3, "selector": {}, "template": {}}, "status": {"readyReplicas": ready}})
    };
    let with_restarts = |n: i32| {
        let mut p = pod("shop", "web-0", json!({"app": "web"}));
        p["status"]["containerStatuses"] = json!([{"name": "app", "restartCount": n, "ready": true, "image": "x", "imageID": "", "started": true}]);
        p
    };
    let mock = serve(vec![
        step(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/web",
            deploy(2),
        ),
        step(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/web",
            deploy(2),
        ),
        list_pods_shop(vec![with_restarts(1)]),
        list_pods_shop(vec![with_restarts(3)]),
    ]);
    let t = target(mock.client.clone());
    let all: gameday::targets::kubernetes::spec::WorkloadReadyProbe =
        serde_json::from_value(json!({"kind": "deployment", "namespace": "shop", "name": "web"}))
            .unwrap();
    let r = workload_ready(t.shared(), &all).await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.detail, "deployment shop/web: 2/3 ready, need 3");
    let two = gameday::targets::kubernetes::spec::WorkloadReadyProbe {
        min_ready: Some(2),
        ..all
    };
    assert!(workload_ready(t.shared(), &two).await.unwrap().ok);
    let rp: gameday::targets::kubernetes::spec::PodRestartsProbe = serde_json::from_value(
        json!({"selector": {"namespaces": ["shop"], "label_selectors": {"app": "web"}}, "max_restarts": 1}),
    )
    .unwrap();
    let base = RestartBaseline::take(t.shared(), &rp).await.unwrap();
    let r = base.read(t.shared(), &rp).await.unwrap();
    assert!(!r.ok, "{}", r.detail);
    assert!(
        r.detail.starts_with("2 container restart(s)"),
        "{}",
        r.detail
    );
    drop(t);
    mock.done().await;
}

/// A Node of an EC2 instance, as EKS names it in `spec.providerID`.
fn ec2_node(name: &str, instance: &str, unschedulable: bool) -> Value {
    let mut n = node(name, unschedulable);
    n["spec"]["providerID"] = json!(format!("aws:///us-east-1a/{instance}"));
    n
}

/// The AWS spot notice's cluster side: the instance's Node is found through
/// `spec.providerID`, cordoned and drained through the Eviction API, and uncordoned on undo;
/// a Node that was cordoned before stays cordoned, and an instance without a Node is left
/// alone.
#[tokio::test]
async fn spot_notice_drains_the_node_of_the_instance_and_undo_uncordons_only_what_it_cordoned() {
    let nodes = || {
        step(
            "GET",
            "/api/v1/nodes",
            list(
                "NodeList",
                vec![
                    ec2_node("node-1", "i-0aaa", false),
                    ec2_node("node-2", "i-0bbb", true),
                    node("node-3", false),
                ],
                None,
            ),
        )
        .q("limit", "500")
    };
    let pods_on = |n: &str| {
        step("GET", "/api/v1/pods", list("PodList", web_pods(1), None))
            .q("fieldSelector", format!("spec.nodeName={n}"))
    };
    let mock = serve(vec![
        // One list of the Nodes for the three instances: i-0bbb runs an already cordoned
        // node, i-0ccc none, i-0aaa node-1.
        nodes(),
        pods_on("node-2"),
        pods_on("node-1"),
        // The notice for i-0aaa: cordon, evict, and undo.
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", true)),
        pods_on("node-1"),
        step(
            "GET",
            "/apis/policy",
            json!({"kind": "APIGroup", "name": "policy", "versions": [{"groupVersion": "policy/v1", "version": "v1"}]}),
        ),
        step(
            "POST",
            "/api/v1/namespaces/shop/pods/web-0/eviction",
            status_ok(),
        )
        .status(201),
        step("PATCH", "/api/v1/nodes/node-1", node("node-1", false)),
    ]);
    let t = target(mock.client.clone());
    let handler = t.spot_notice_handler();
    let ids = ["i-0bbb", "i-0ccc", "i-0aaa"].map(String::from);
    let mut records = handler.prepare_notices(&ids).await.unwrap().into_iter();
    let (id, cordoned) = records.next().unwrap();
    assert_eq!(id, "i-0bbb");
    assert_eq!(
        cordoned["nodes"],
        json!([{"name": "node-2", "was_unschedulable": true}])
    );
    let (id, undo) = records.next().unwrap();
    assert_eq!(id, "i-0aaa", "i-0ccc runs no node: no record");
    assert_eq!(
        undo["nodes"],
        json!([{"name": "node-1", "was_unschedulable": false}])
    );
    assert!(records.next().is_none());
    handler.on_notice("i-0aaa", &undo).await.unwrap();
    handler.undo(&undo).await.unwrap();
    // Undoing the notice of a node cordoned before the run sends nothing.
    handler.undo(&cordoned).await.unwrap();
    drop((handler, t));
    let seen = mock.done().await;
    assert_eq!(seen[3].body, json!({"spec": {"unschedulable": true}}));
    assert_eq!(seen[6].body["apiVersion"], "policy/v1");
    assert_eq!(seen[7].body, json!({"spec": {"unschedulable": false}}));
}

/// Regression (issue #13): a revert was tried once, so one 409 on the conditional CoreDNS
/// restore or one 5xx from the API left DNS broken until a person acted. Now the engine's
/// revert (runs and `recover` alike) retries with backoff inside a budget: a 409, then a
/// 503, then the restore goes through. A refusal no retry can change (someone else rewrote
/// the Corefile) is not retried.
#[tokio::test]
async fn a_revert_that_fails_with_409_then_503_is_retried_until_it_succeeds() {
    use gameday::engine::revert::{with_retries, RetryPolicy};
    let policy = RetryPolicy {
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        budget: Duration::from_secs(20),
    };
    let spec = json!({"scope": "cluster", "names": ["payments.shop.svc.cluster.local"], "rcode": "servfail"});
    let mock = serve(vec![
        step("GET", CM, coredns_cm(COREFILE, "10")),
        step("GET", CM, coredns_cm(COREFILE, "10")),
    ]);
    let t = target(mock.client.clone());
    let f = fault(&t, "dns_failure", spec);
    let p = f.prepare().await.unwrap();
    drop((f, t));
    mock.done().await;
    let patched = p.undo["patched"].as_str().unwrap().to_string();

    let mock = serve(vec![
        step("GET", CM, coredns_cm(&patched, "11")),
        step("PATCH", CM, json!({})).fail(409, "Conflict"),
        step("GET", CM, json!({})).fail(503, "ServiceUnavailable"),
        step("GET", CM, coredns_cm(&patched, "12")),
        step("PATCH", CM, coredns_cm(COREFILE, "13")),
    ]);
    let t = target(mock.client.clone());
    let out = with_retries(&t, "dns_failure", &p.undo, policy).await;
    drop(t);
    let seen = mock.done().await;
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.attempts, 3);
    assert_eq!(seen[4].body["data"]["Corefile"], COREFILE);
    assert_eq!(seen[4].body["metadata"]["resourceVersion"], "12");

    let mock = serve(vec![step(
        "GET",
        CM,
        coredns_cm(".:53 {\n    forward . 8.8.8.8\n}\n", "14"),
    )]);
    let t = target(mock.client.clone());
    let out = with_retries(&t, "dns_failure", &p.undo, policy).await;
    drop(t);
    mock.done().await;
    assert_eq!(out.attempts, 1, "a deliberate refusal is not retried");
    assert!(
        out.result
            .as_ref()
            .is_err_and(|e| e.contains("someone else changed it")),
        "{out:?}"
    );
}
