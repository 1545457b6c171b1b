//! Harness for the Kubernetes end-to-end tests: a real API server named by
//! `GAMEDAY_E2E_KUBECONFIG` (k8s-local in `.ci/run`, kind in GitHub Actions, or any
//! cluster), a throwaway namespace per test, `kubectl` for setup, and one process-wide
//! lock because cordons and the CoreDNS patch are cluster-wide.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gameday::targets::kubernetes::spec::KubernetesConfig;
use gameday::targets::kubernetes::KubernetesTarget;
use serde_json::{json, Value};

static CLUSTER: Mutex<()> = Mutex::new(());

/// One e2e test's view of the cluster. Deletes its namespace when dropped.
pub struct E2e {
    /// Path of the kubeconfig.
    pub kubeconfig: String,
    /// Its current context.
    pub context: String,
    /// This test's namespace.
    pub ns: String,
    _lock: MutexGuard<'static, ()>,
}

/// Set up for one test, or say loudly that it is skipped (and return `None`) when
/// `GAMEDAY_E2E_KUBECONFIG` is unset.
pub fn setup(test: &str) -> Option<E2e> {
    let Some(kubeconfig) = std::env::var("GAMEDAY_E2E_KUBECONFIG")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        // Written to the raw stderr handle, not with eprintln!: the test harness captures
        // eprintln! output of passing tests, and a skip must not pass silently.
        let _ = writeln!(
            std::io::stderr(),
            "!!!!!!!! SKIPPED: GAMEDAY_E2E_KUBECONFIG not set: {test} did not run against a cluster !!!!!!!!"
        );
        return None;
    };
    let lock = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let ns = format!(
        "gd-e2e-{}-{:06x}",
        test.replace('_', "-")
            .chars()
            .take(30)
            .collect::<String>()
            .trim_end_matches('-'),
        rand::random::<u32>() & 0xffffff
    );
    let mut e = E2e {
        kubeconfig,
        context: String::new(),
        ns,
        _lock: lock,
    };
    e.context = e.kubectl(&["config", "current-context"]).trim().to_string();
    e.kubectl(&["create", "namespace", &e.ns.clone()]);
    Some(e)
}

impl Drop for E2e {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args([
                "--kubeconfig",
                &self.kubeconfig,
                "delete",
                "namespace",
                &self.ns,
                "--wait=false",
            ])
            .output();
    }
}

impl E2e {
    /// Run kubectl; panics with its stderr on failure.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_in(args, None)
    }

    /// Run kubectl with `input` on stdin.
    pub fn kubectl_in(&self, args: &[&str], input: Option<&str>) -> String {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl on PATH");
        if let Some(i) = input {
            child.stdin.take().unwrap().write_all(i.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply` a JSON manifest.
    pub fn apply(&self, manifest: &Value) {
        self.kubectl_in(&["apply", "-f", "-"], Some(&manifest.to_string()));
    }

    /// `kubectl get -o json`.
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl(&a)).unwrap()
    }

    /// The test's pods with `app=<app>`: (name, uid, node, ready).
    pub fn pods(&self, app: &str) -> Vec<(String, String, String, bool)> {
        let l = self.get_json(&["pods", "-n", &self.ns, "-l", &format!("app={app}")]);
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                let ready = p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["metadata"]["uid"].as_str().unwrap().to_string(),
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                    ready,
                )
            })
            .collect()
    }

    /// A Deployment of `replicas` fake pods labelled `app=<name>`, optionally preferring a
    /// node; waits until all are ready.
    pub fn deploy(&self, name: &str, replicas: u32, prefer_node: Option<&str>) {
        let mut spec = json!({
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}],
            "terminationGracePeriodSeconds": 1
        });
        if let Some(n) = prefer_node {
            spec["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [n]}]}}
            ]}});
        }
        self.apply(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec}
            }
        }));
        self.wait_ready(name, replicas as usize);
    }

    /// Wait until `n` pods of `app` are ready and no other pod of it exists.
    pub fn wait_ready(&self, app: &str, n: usize) {
        wait_until(
            &format!("{n} ready pods of {app}"),
            Duration::from_secs(60),
            || {
                let p = self.pods(app);
                p.len() == n && p.iter().all(|x| x.3)
            },
        );
    }

    /// A target connected the way a run connects: kubeconfig and context pinned.
    pub async fn target(&self, extra: Value) -> KubernetesTarget {
        let mut cfg = json!({"context": self.context, "kubeconfig": self.kubeconfig});
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let cfg: KubernetesConfig = serde_json::from_value(cfg).unwrap();
        KubernetesTarget::connect(cfg, false)
            .await
            .expect("connect to the e2e cluster")
    }
}

/// Poll `f` every 200 ms until it holds, or panic naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
