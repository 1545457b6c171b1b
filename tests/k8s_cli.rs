//! The gameday binary against the real API server named by `GAMEDAY_E2E_KUBECONFIG`:
//! `validate` with no cluster at all, `plan` resolving the exact pods and nodes with its
//! preflight and touching nothing, context pinning stopping `run` before anything happens,
//! and `run` killed with SIGKILL mid-fault, then `recover` restoring the Corefile byte for
//! byte and uncordoning the node from the ledger alone. The load drives a server on
//! 127.0.0.1: the cluster's pod and Service addresses are not reachable from here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::k8s_e2e::{free_node, unschedulable};
use crate::support::k8s_local::{setup, wait_until, E2e};
use crate::support::{cmd, status_server, text};

fn write_scenario(dir: &Path, context: &str, faults: &str, chaos: &str) -> PathBuf {
    let (port, _) = status_server(200);
    let text = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: k8s-cli
target:
  kubernetes:
    context: {context}
load:
  url: http://127.0.0.1:{port}/
  rate: 20
  connections: 2
  timeout: 2s
phases:
  - name: chaos
    duration: {chaos}
    faults:
{faults}"#
    );
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `gameday run [EXTRA] --no-progress SCENARIO --out OUT` against the test's cluster.
fn run_cmd(e: &E2e, scenario: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = cmd();
    c.arg("run")
        .args(extra)
        .args([
            "--no-progress",
            scenario.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("KUBECONFIG", &e.kubeconfig);
    c
}

fn run_dir(out: &Path) -> Option<PathBuf> {
    std::fs::read_dir(out)
        .ok()?
        .flatten()
        .next()
        .map(|d| d.path())
}

fn corefile(e: &E2e) -> String {
    e.get_json(&["configmap", "-n", "kube-system", "coredns"])["data"]["Corefile"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn k8s_scenarios_validate_without_a_cluster() {
    // Runs whether or not a cluster is configured: validate never contacts a target.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !(name.starts_with("k8s-") && name.ends_with(".yaml")) {
            continue;
        }
        seen += 1;
        let o = cmd()
            .args(["validate", entry.path().to_str().unwrap()])
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
    }
    assert_eq!(seen, 4, "the four shipped k8s scenarios");
}

#[test]
fn k8s_plan_lists_exact_pods_and_nodes_with_preflight_and_touches_nothing() {
    let Some(e) = setup("cli_plan") else { return };
    e.deploy("web", 3, None);
    let node = free_node(&e);
    let dir = tempfile::tempdir().unwrap();
    let faults = format!(
        "      - name: kill-web\n        pod_kill:\n          selector: {{ namespaces: [{ns}], label_selectors: {{ app: web }} }}\n          mode: fixed\n          value: 2\n          max_targets: 2\n      - name: drain\n        at: 5s\n        duration: 10s\n        node_drain:\n          selector: {{ names: [{node}] }}\n",
        ns = e.ns
    );
    let s = write_scenario(dir.path(), &e.context, &faults, "20s");
    let before: Vec<String> = e.pods("web").into_iter().map(|p| p.1).collect();
    let o = cmd()
        .args(["plan", "--json", s.to_str().unwrap()])
        .env("KUBECONFIG", &e.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let faults = report["faults"].as_array().unwrap();
    let kill = faults[0]["resolution"]["Ok"]["targets"]
        .as_array()
        .expect("kill resolved");
    assert_eq!(kill.len(), 2, "{report:#}");
    let pods = e.pods("web");
    for t in kill {
        let name = t.as_str().unwrap().rsplit('/').next().unwrap();
        assert!(
            pods.iter().any(|p| p.0 == name),
            "{t} is one of the web pods"
        );
    }
    let drain = faults[1]["resolution"]["Ok"]["targets"]
        .as_array()
        .expect("drain resolved");
    assert_eq!(drain[0], format!("node {node}"));
    let findings = report["findings"].as_array().unwrap();
    assert!(
        !findings.iter().any(|f| f[1]["severity"] == "error"),
        "{findings:#?}"
    );
    // Nothing was touched.
    let after: Vec<String> = e.pods("web").into_iter().map(|p| p.1).collect();
    assert_eq!(before, after);
    assert!(!unschedulable(&e, &node));
}

#[test]
fn k8s_run_refuses_a_context_the_scenario_does_not_name() {
    let Some(e) = setup("cli_context") else {
        return;
    };
    let original = corefile(&e);
    let dir = tempfile::tempdir().unwrap();
    let s = write_scenario(
        dir.path(),
        "production",
        "      - name: dns\n        dns_failure: { names: [x.example.com] }\n",
        "5s",
    );
    let out = dir.path().join("reports");
    let o = run_cmd(&e, &s, &out, &[]).output().unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("--yes"), "{}", text(&o));
    assert_eq!(
        corefile(&e),
        original,
        "nothing may happen on a context mismatch"
    );
    // With --yes the operator takes the current context: the run goes ahead there, and
    // reverts at its end.
    let o = run_cmd(&e, &s, &out, &["--yes"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ledgers: String = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|r| std::fs::read_to_string(r.path().join("ledger.jsonl")).unwrap_or_default())
        .collect();
    assert!(
        ledgers.contains("x.example.com"),
        "the --yes run patched CoreDNS: {ledgers}"
    );
    assert!(
        ledgers.contains(&format!("\"context\":\"{}\"", e.context)),
        "{ledgers}"
    );
    assert_eq!(
        corefile(&e).as_bytes(),
        original.as_bytes(),
        "and restored it"
    );
}

#[test]
fn k8s_sigkill_mid_fault_then_recover_restores_corefile_and_uncordons() {
    let Some(e) = setup("cli_recover") else {
        return;
    };
    let original = corefile(&e);
    let node = free_node(&e);
    let dir = tempfile::tempdir().unwrap();
    let faults = format!(
        "      - name: dns\n        duration: 100s\n        dns_failure: {{ names: [payments.example.com], rcode: servfail }}\n      - name: drain\n        duration: 100s\n        node_drain:\n          selector: {{ names: [{node}] }}\n          eviction_timeout: 20s\n"
    );
    let s = write_scenario(dir.path(), &e.context, &faults, "120s");
    let out = dir.path().join("reports");
    let mut child = run_cmd(&e, &s, &out, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("both faults injected", Duration::from_secs(60), || {
        corefile(&e).contains("rcode SERVFAIL") && unschedulable(&e, &node)
    });
    let ledger = run_dir(&out).unwrap().join("ledger.jsonl");
    let records = std::fs::read_to_string(&ledger).unwrap();
    assert!(
        records.contains("\"original\"") && records.contains("was_unschedulable"),
        "{records}"
    );
    child.kill().unwrap(); // SIGKILL: no revert at all
    child.wait().unwrap();
    assert!(
        corefile(&e).contains("rcode SERVFAIL"),
        "the killed runner left the patch"
    );
    assert!(
        unschedulable(&e, &node),
        "the killed runner left the cordon"
    );

    let o = cmd()
        .args(["recover", "--out", out.to_str().unwrap()])
        .env("KUBECONFIG", &e.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        corefile(&e).as_bytes(),
        original.as_bytes(),
        "byte-exact restore"
    );
    assert!(!unschedulable(&e, &node));
    let o = cmd()
        .args(["recover", "--out", out.to_str().unwrap()])
        .env("KUBECONFIG", &e.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to recover"), "{}", text(&o));
}

#[test]
fn k8s_run_kills_pods_every_interval_and_the_deployment_recovers() {
    let Some(e) = setup("cli_run") else { return };
    e.deploy("web", 3, None);
    let before: Vec<String> = e.pods("web").into_iter().map(|p| p.1).collect();
    let dir = tempfile::tempdir().unwrap();
    let faults = format!(
        "      - name: kill-web\n        at: 1s\n        duration: 6s\n        every: 2s\n        pod_kill:\n          selector: {{ namespaces: [{ns}], label_selectors: {{ app: web }} }}\n          grace_period: 0s\n          max_targets: 1\n",
        ns = e.ns
    );
    let s = write_scenario(dir.path(), &e.context, &faults, "10s");
    let out = dir.path().join("reports");
    let o = run_cmd(&e, &s, &out, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ledger = std::fs::read_to_string(run_dir(&out).unwrap().join("ledger.jsonl")).unwrap();
    // Each round selects afresh among the pods that exist then, so a later round may hit a
    // replacement made after an earlier one: the UIDs in the ledger say what was hit.
    let rounds: Vec<Vec<String>> = ledger
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["op"] == "inject" && r["kind"] == "pod_kill")
        .map(|r| {
            assert_eq!(r["prepared"]["irreversible"], true, "{r}");
            r["prepared"]["undo"]["pods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["uid"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert!(
        rounds.len() >= 2,
        "every 2s for 6s kills more than once:\n{ledger}"
    );
    assert!(
        rounds.iter().all(|r| r.len() == 1),
        "max_targets: 1 caps each round at one pod: {rounds:?}"
    );
    // The first round could only hit one of the original pods; every killed pod is gone,
    // and the ReplicaSet brought the Deployment back to 3 ready replicas.
    assert!(before.contains(&rounds[0][0]), "{before:?} {rounds:?}");
    e.wait_ready("web", 3);
    let after: Vec<String> = e.pods("web").into_iter().map(|p| p.1).collect();
    assert_eq!(after.len(), 3, "{after:?}");
    for uid in rounds.iter().flatten() {
        assert!(
            !after.contains(uid),
            "killed pod {uid} still there: {after:?}"
        );
    }
}

/// The hypothesis's Kubernetes probes through a real run: readings once a second, a verdict
/// per phase (the share of passing readings), events when a probe starts failing, and the
/// journal and report carrying it all.
#[test]
fn k8s_probe_slos_are_read_every_second_and_judged_per_phase() {
    let Some(e) = setup("cli_probes") else { return };
    e.deploy("web", 2, None);
    let dir = tempfile::tempdir().unwrap();
    let ns = &e.ns;
    let text_yaml = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: k8s-probes
target:
  kubernetes:
    context: {context}
hypothesis:
  slos:
    - name: web-up
      workload_ready: {{ kind: deployment, namespace: {ns}, name: web, min_ready: 1 }}
    - name: web-needs-3
      workload_ready: {{ kind: deployment, namespace: {ns}, name: web, min_ready: 3 }}
      phases: [chaos]
    - name: no-restarts
      pod_restarts: {{ selector: {{ namespaces: [{ns}], label_selectors: {{ app: web }} }}, max_restarts: 0 }}
phases:
  - name: baseline
    duration: 3s
  - name: chaos
    duration: 3s
"#,
        context = e.context
    );
    let s = dir.path().join("probes.yaml");
    std::fs::write(&s, text_yaml).unwrap();
    let out = dir.path().join("reports");
    let o = run_cmd(&e, &s, &out, &[]).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "web-needs-3 is violated: {}",
        text(&o)
    );
    let run = run_dir(&out).unwrap();
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("journal.json")).unwrap()).unwrap();
    let slo = |name: &str| {
        journal["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no SLO {name} in {}", journal["slos"]))
            .clone()
    };
    let up = slo("web-up");
    assert_eq!(up["metric"], "probe_ok_pct");
    assert_eq!(up["passed"], true, "{up}");
    assert_eq!(up["per_phase"].as_array().unwrap().len(), 2, "{up}");
    assert_eq!(up["per_phase"][0]["observed"], 100.0, "{up}");
    let three = slo("web-needs-3");
    assert_eq!(three["passed"], false, "{three}");
    assert_eq!(three["per_phase"][0]["phase"], "chaos");
    assert_eq!(three["per_phase"][0]["observed"], 0.0, "{three}");
    assert_eq!(slo("no-restarts")["passed"], true);
    let events = journal["events"].to_string();
    assert!(
        events.contains("probe of SLO `web-needs-3` fails") && events.contains("2/2 ready"),
        "{events}"
    );
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains(&format!(
            "deployment {ns}/web ready replicas >= 3 at every reading"
        )),
        "{md}"
    );
}

/// A revert the API server refuses twice (409 Conflict, then 503 Service Unavailable) and
/// then accepts, through a whole run against the real API server: the Kubernetes target's
/// fail point (`GAMEDAY_FAILPOINTS`, debug builds only) answers the first two revert
/// attempts as the API server would, through the same error path (`kube::Error::Api`) the
/// retry classification reads. The drain is reverted at its phase's end at the third
/// attempt, the node is schedulable again, and the run exits 0 with nothing pending.
#[test]
fn k8s_a_revert_refused_with_409_then_503_is_retried_and_the_run_ends_clean() {
    let Some(e) = setup("cli_retry") else { return };
    let node = free_node(&e);
    let dir = tempfile::tempdir().unwrap();
    let faults = format!(
        "      - name: drain\n        node_drain:\n          selector: {{ names: [{node}] }}\n          eviction_timeout: 20s\n"
    );
    let s = write_scenario(dir.path(), &e.context, &faults, "3s");
    let out = dir.path().join("reports");
    let o = run_cmd(&e, &s, &out, &[])
        .env(
            gameday::failpoints::ENV,
            "kube-revert=1*return(409)->1*return(503)",
        )
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(!unschedulable(&e, &node), "the node is still cordoned: {t}");
    assert!(t.contains("fail point kube-revert (409)"), "{t}");
    assert!(t.contains("fail point kube-revert (503)"), "{t}");
    let run = run_dir(&out).unwrap();
    let ledger = std::fs::read_to_string(run.join("ledger.jsonl")).unwrap();
    assert!(ledger.contains("\"clean\":true"), "{ledger}");
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("journal.json")).unwrap()).unwrap();
    assert!(
        journal["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ev| ev["message"] == "reverted `drain` at attempt 3"),
        "{:#}",
        journal["events"]
    );
}
