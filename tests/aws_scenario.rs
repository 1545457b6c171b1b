//! The AWS target through the `gameday` binary, as a person uses it: scenarios in YAML, `plan`,
//! `run`, Ctrl-C, SIGKILL + `recover`, against moto's EC2 server on 127.0.0.1 (and, for the DR
//! drill, k8s-local as well). Credentials reach the binary through the standard chain only
//! (environment variables here), never through the scenario.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::ec2_fault_proxy::{FaultProxy, Rule};
use crate::support::k8s_local;
use crate::support::moto::{launch, launch_persistent_spot, states, Kind, Moto};
use crate::support::{cmd, text};

/// A secret access key distinctive enough to search for: it must never leave the process.
const SECRET: &str = "gdTestSecret9f3c1e7b5a";

/// The standard AWS chain, pinned to test values: no profile, no instance metadata.
fn aws_env(c: &mut Command, keys: Option<(String, String)>) -> &mut Command {
    let (id, secret) = keys.unwrap_or_else(|| ("testing".to_owned(), SECRET.to_owned()));
    c.env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/gameday-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/gameday-test")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_EC2")
}

/// Writes a one-phase scenario against `endpoint`; `faults` is YAML indented for the list.
fn scenario(dir: &Path, endpoint: &str, extra_target: &str, phase: &str, faults: &str) -> PathBuf {
    let yaml = format!(
        "apiVersion: gameday/v1\nkind: Gameday\nmetadata:\n  name: aws-cli\ntarget:\n{extra_target}  aws:\n    region: us-east-1\n    endpoint_url: {endpoint}\n    allowed_account_ids: [\"123456789012\"]\nphases:\n  - name: chaos\n    duration: {phase}\n    faults:\n{faults}"
    );
    let path = dir.join("aws.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn spawn_run(s: &Path, out: &Path, kubeconfig: Option<&str>) -> Child {
    let mut c = cmd();
    aws_env(&mut c, None).args([
        "run",
        "--no-progress",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    if let Some(k) = kubeconfig {
        c.env("KUBECONFIG", k);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the child, bounded, and returns its exit code and output.
fn finish(child: Child, limit: Duration) -> (Option<i32>, String) {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(o)) => (o.status.code(), text(&o)),
        _ => {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("gameday run did not end within {limit:?}");
        }
    }
}

fn run_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("ledger.jsonl").exists())
        .expect("a run folder with a ledger")
}

/// Every file of the run folder, as text, for "never written" checks.
fn folder_text(dir: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_file() {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
        }
    }
    all
}

/// Polls moto until `want(states)` or the limit; returns whether it happened.
async fn saw(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
    limit: Duration,
    want: impl Fn(&[String]) -> bool,
) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if want(&states(ec2, ids).await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn all_up(s: &[String]) -> bool {
    s.iter().all(|x| x == "running" || x == "pending")
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_names_the_instances_it_would_hit_and_touches_none() {
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.ec2().await;
    let spot = launch(&ec2, Kind::SpotOneTime, 2, "shop", "us-east-1a").await;
    let on_demand = launch(&ec2, Kind::OnDemand, 1, "shop", "us-east-1a").await;
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &moto.endpoint,
        "",
        "5m",
        "      - name: reclaim\n        spot_interruption:\n          select: {tags: {team: shop}}\n          acknowledge_irreversible: true\n      - name: zone-down\n        at: 3m\n        ec2_stop:\n          select: {tags: {team: shop}, lifecycle: on_demand}\n",
    );
    let mut c = cmd();
    let o = aws_env(&mut c, None)
        .args(["plan", "--json", s.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let reclaim = &plan["faults"][0];
    assert_eq!(reclaim["target"], "aws");
    assert_eq!(reclaim["kind"], "spot_interruption");
    // The notice (2m by default) is on the timeline.
    assert_eq!(reclaim["end"], "2m");
    let hit: Vec<String> =
        serde_json::from_value(reclaim["resolution"]["Ok"]["targets"].clone()).unwrap();
    assert_eq!(hit.len(), 1, "{reclaim}");
    assert!(
        spot.contains(&hit[0]),
        "only spot instances: {hit:?} vs {spot:?}"
    );
    assert_eq!(reclaim["resolution"]["Ok"]["eligible"], 2);
    let notes = reclaim["resolution"]["Ok"]["notes"].to_string();
    assert!(
        notes.contains("method: ec2") && notes.contains("IRREVERSIBLE"),
        "{notes}"
    );
    let stop = &plan["faults"][1];
    assert_eq!(stop["resolution"]["Ok"]["targets"], json!(on_demand));
    assert!(
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f[1]["severity"] != "Error"),
        "{}",
        plan["findings"]
    );
    // The text form says the same for people.
    let mut c = cmd();
    let o = aws_env(&mut c, None)
        .args(["plan", s.to_str().unwrap()])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        t.contains("fault `reclaim` (spot_interruption on aws)"),
        "{t}"
    );
    assert!(t.contains(&format!("    - {}", on_demand[0])), "{t}");
    assert!(!t.contains(SECRET), "the secret key was printed: {t}");
    // Nothing was touched.
    let mut every = spot.clone();
    every.extend(on_demand);
    assert_eq!(states(&ec2, &every).await, vec!["running"; 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_that_names_no_account_needs_yes() {
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.ec2().await;
    let ids = launch(&ec2, Kind::OnDemand, 1, "dr", "us-east-1a").await;
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &moto.endpoint,
        "",
        "1m",
        "      - name: zone-down\n        ec2_stop:\n          select: {tags: {team: dr}}\n",
    );
    let yaml = std::fs::read_to_string(&s).unwrap();
    std::fs::write(
        &s,
        yaml.replace("    allowed_account_ids: [\"123456789012\"]\n", ""),
    )
    .unwrap();
    let mut c = cmd();
    let o = aws_env(&mut c, None)
        .args(["plan", s.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("the scenario names no AWS account"),
        "{}",
        text(&o)
    );
    let out = dir.path().join("reports");
    let mut c = cmd();
    let o = aws_env(&mut c, None)
        .args([
            "run",
            "--no-progress",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(5),
        "refused before anything: {}",
        text(&o)
    );
    assert_eq!(states(&ec2, &ids).await, vec!["running"]);
    // --yes: the person confirms; plan then only warns.
    let mut c = cmd();
    let o = aws_env(&mut c, None)
        .args(["plan", "--yes", s.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("[warning] aws: the scenario names no AWS account"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_reports_missing_iam_permissions_through_dry_run() {
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.ec2().await;
    let ids = launch(&ec2, Kind::OnDemand, 1, "dr", "us-east-1a").await;
    let keys = moto.iam_user(
        "reader",
        &["ec2:DescribeInstances", "ec2:DescribeInstanceAttribute"],
    );
    moto.enforce_iam();
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &moto.endpoint,
        "",
        "1m",
        "      - name: zone-down\n        ec2_stop:\n          select: {tags: {team: dr}}\n",
    );
    let mut c = cmd();
    let o = aws_env(&mut c, Some(keys.clone()))
        .args(["plan", s.to_str().unwrap()])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(5), "{t}");
    assert!(t.contains("missing permission ec2:StopInstances"), "{t}");
    assert!(t.contains("missing permission ec2:StartInstances"), "{t}");
    assert!(!t.contains(&keys.1), "the secret key was printed: {t}");
    // A run refuses before anything is injected, for the same reason.
    let mut c = cmd();
    let out = dir.path().join("reports");
    let o = aws_env(&mut c, Some(keys.clone()))
        .args([
            "run",
            "--no-progress",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains("ec2:StopInstances"), "{}", text(&o));
    let reader = moto.ec2_with(Some(keys)).await;
    assert_eq!(states(&reader, &ids).await, vec!["running"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_stops_after_the_notice_and_starts_everything_again_at_the_end() {
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.ec2().await;
    let spot = launch_persistent_spot(&ec2, "shop").await;
    let on_demand = launch(&ec2, Kind::OnDemand, 1, "shop", "us-east-1a").await;
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &moto.endpoint,
        "",
        "9s",
        "      - name: reclaim\n        duration: 6s\n        spot_interruption:\n          select: {tags: {team: shop}}\n          notice: 2s\n          behavior: stop\n      - name: zone-down\n        at: 1s\n        duration: 3s\n        ec2_stop:\n          select: {tags: {team: shop}, lifecycle: on_demand}\n",
    );
    let out = dir.path().join("reports");
    let started = Instant::now();
    let child = spawn_run(&s, &out, None);
    let spot_ids = vec![spot.clone()];
    assert!(
        saw(&ec2, &on_demand, Duration::from_secs(20), |s| s[0]
            == "stopped")
        .await,
        "the on-demand instance was stopped"
    );
    assert_eq!(
        states(&ec2, &spot_ids).await,
        vec!["running"],
        "the spot instance still runs during its notice"
    );
    assert!(
        saw(&ec2, &spot_ids, Duration::from_secs(20), |s| s[0]
            == "stopped")
        .await,
        "the spot instance was stopped when the notice ended"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before the 2 s notice"
    );
    let (code, t) = finish(child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
    let mut every = on_demand.clone();
    every.push(spot);
    assert!(
        all_up(&states(&ec2, &every).await),
        "revert started them all again"
    );
    let run = run_dir(&out);
    let ledger = std::fs::read_to_string(run.join("ledger.jsonl")).unwrap();
    assert!(ledger.contains("\"method\":\"ec2\""), "{ledger}");
    // The report says how the interruption was delivered.
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("spot_interruption (method: ec2, 2s notice, then stop)"),
        "{report}"
    );
    assert!(
        ledger.contains(&format!("\"endpoint_url\":\"{}\"", moto.endpoint)),
        "{ledger}"
    );
    assert!(
        !folder_text(&run).contains(SECRET),
        "the secret key reached the run folder"
    );
    assert!(!t.contains(SECRET), "the secret key was logged");
    // Nothing left for recover.
    let o = recover(&out);
    assert!(text(&o).contains("nothing to recover"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_the_notice_cancels_the_termination() {
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.ec2().await;
    let spot = launch(&ec2, Kind::SpotOneTime, 1, "shop", "us-east-1a").await;
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &moto.endpoint,
        "",
        "2m",
        "      - name: reclaim\n        spot_interruption:\n          select: {tags: {team: shop}}\n          notice: 90s\n          acknowledge_irreversible: true\n",
    );
    let out = dir.path().join("reports");
    let child = spawn_run(&s, &out, None);
    k8s_local::wait_until(
        "the notice is in the ledger",
        Duration::from_secs(30),
        || {
            std::fs::read_dir(&out).is_ok()
                && std::fs::read_to_string(run_dir(&out).join("ledger.jsonl"))
                    .is_ok_and(|l| l.contains("\"op\":\"inject\""))
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (code, t) = finish(child, Duration::from_secs(60));
    assert_eq!(code, Some(3), "{t}");
    assert!(
        asked.elapsed() < Duration::from_secs(60),
        "the abort did not wait for the 90 s notice"
    );
    assert_eq!(
        states(&ec2, &spot).await,
        vec!["running"],
        "an interruption whose notice was cut short never happens"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_the_stop_then_recover_starts_the_instance() {
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.ec2().await;
    let spot = vec![launch_persistent_spot(&ec2, "shop").await];
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &moto.endpoint,
        "",
        "2m",
        "      - name: reclaim\n        spot_interruption:\n          select: {tags: {team: shop}}\n          notice: 1s\n          behavior: stop\n",
    );
    let out = dir.path().join("reports");
    let mut child = spawn_run(&s, &out, None);
    assert!(saw(&ec2, &spot, Duration::from_secs(30), |s| s[0] == "stopped").await);
    child.kill().unwrap(); // SIGKILL: no revert at all
    child.wait().unwrap();
    assert_eq!(
        states(&ec2, &spot).await,
        vec!["stopped"],
        "the killed runner left it stopped"
    );
    // recover reads the endpoint and region from the ledger, credentials from the chain.
    let o = recover(&out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("reclaim (spot_interruption)"),
        "{}",
        text(&o)
    );
    assert!(all_up(&states(&ec2, &spot).await));
    let o = recover(&out);
    assert!(text(&o).contains("nothing to recover"), "{}", text(&o));
}

/// The DR drill: a spot notice drains the instance's Node (found through `spec.providerID`)
/// in a real API server, the instance stops when the notice ends, and the end of the fault
/// starts it and uncordons the Node.
#[tokio::test(flavor = "multi_thread")]
async fn dr_drill_drains_the_instances_node_then_uncordons_it() {
    let Some(e) = k8s_local::setup("aws_dr_drill") else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.ec2().await;
    let spot = vec![launch_persistent_spot(&ec2, "shop").await];
    let cleanup = SpotNode::create(&e, &spot[0]);
    let node = cleanup.node.clone();
    e.apply(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "on-spot", "namespace": e.ns},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}
    }));
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &moto.endpoint,
        &format!("  kubernetes:\n    context: {}\n", e.context),
        "10s",
        "      - name: reclaim\n        duration: 7s\n        spot_interruption:\n          select: {tags: {team: shop}}\n          notice: 3s\n          behavior: stop\n",
    );
    let out = dir.path().join("reports");
    let child = spawn_run(&s, &out, Some(&e.kubeconfig));
    k8s_local::wait_until(
        "the node is cordoned at the notice",
        Duration::from_secs(30),
        || cleanup.cordoned(),
    );
    k8s_local::wait_until("its pod is evicted", Duration::from_secs(30), || {
        let pods = e.get_json(&["pods", "-n", &e.ns]);
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| !p["metadata"]["deletionTimestamp"].is_null())
    });
    assert_eq!(
        states(&ec2, &spot).await,
        vec!["running"],
        "drained before the stop"
    );
    assert!(saw(&ec2, &spot, Duration::from_secs(20), |s| s[0] == "stopped").await);
    let (code, t) = finish(child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{t}");
    assert!(!cleanup.cordoned(), "revert uncordoned the node");
    assert!(
        all_up(&states(&ec2, &spot).await),
        "and started the instance"
    );
    drop(cleanup);
}

/// SIGKILL during a spot notice that cordoned a Node: `recover` rebuilds both targets from
/// the ledger and uncordons it; the termination the notice announced never happens.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_the_notice_then_recover_uncordons_the_node() {
    let Some(e) = k8s_local::setup("aws_sigkill_notice") else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    let ec2 = moto.ec2().await;
    let spot = launch(&ec2, Kind::SpotOneTime, 1, "shop", "us-east-1a").await;
    let node = SpotNode::create(&e, &spot[0]);
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &moto.endpoint,
        &format!("  kubernetes:\n    context: {}\n", e.context),
        "2m",
        "      - name: reclaim\n        spot_interruption:\n          select: {tags: {team: shop}}\n          notice: 90s\n          acknowledge_irreversible: true\n",
    );
    let out = dir.path().join("reports");
    let mut child = spawn_run(&s, &out, Some(&e.kubeconfig));
    k8s_local::wait_until(
        "the notice cordons the node",
        Duration::from_secs(30),
        || node.cordoned(),
    );
    child.kill().unwrap(); // SIGKILL: no revert at all
    child.wait().unwrap();
    assert!(node.cordoned(), "the killed runner left the cordon");
    let mut c = cmd();
    let o = aws_env(&mut c, None)
        .args(["recover", "--out", out.to_str().unwrap()])
        .env("KUBECONFIG", &e.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!node.cordoned(), "recover uncordoned the node");
    assert_eq!(states(&ec2, &spot).await, vec!["running"]);
}

/// Throttling that outlasts the SDK's retries, when the interruption is due: the run says so
/// clearly, the instance keeps running and the Node the notice cordoned is uncordoned.
#[tokio::test(flavor = "multi_thread")]
async fn throttled_interruption_ends_clearly_and_leaves_no_node_cordoned() {
    let Some(e) = k8s_local::setup("aws_throttled") else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    let proxy = FaultProxy::start(moto.addr).await;
    proxy.add(Rule::always("StopInstances", "RequestLimitExceeded"));
    let ec2 = moto.ec2().await;
    let spot = vec![launch_persistent_spot(&ec2, "shop").await];
    let cleanup = SpotNode::create(&e, &spot[0]);
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        &proxy.endpoint,
        &format!("  kubernetes:\n    context: {}\n", e.context),
        "30s",
        "      - name: reclaim\n        duration: 25s\n        spot_interruption:\n          select: {tags: {team: shop}}\n          notice: 2s\n          behavior: stop\n",
    );
    let out = dir.path().join("reports");
    let child = spawn_run(&s, &out, Some(&e.kubeconfig));
    k8s_local::wait_until(
        "the notice cordons the node",
        Duration::from_secs(30),
        || cleanup.cordoned(),
    );
    k8s_local::wait_until(
        "the failed stop uncordons it",
        Duration::from_secs(60),
        || !cleanup.cordoned(),
    );
    let (code, t) = finish(child, Duration::from_secs(90));
    assert_eq!(code, Some(0), "no SLO was broken: {t}");
    assert!(t.contains("RequestLimitExceeded"), "{t}");
    assert!(
        t.contains("could not be injected"),
        "the summary says so: {t}"
    );
    assert!(!cleanup.cordoned());
    assert_eq!(states(&ec2, &spot).await, vec!["running"]);
    assert!(proxy.calls("StopInstances").len() >= 2, "the SDK retried");
    let ledger = std::fs::read_to_string(run_dir(&out).join("ledger.jsonl")).unwrap();
    assert!(ledger.contains("\"op\":\"inject_failed\""), "{ledger}");
    drop(cleanup);
}

/// A Node of the test whose `spec.providerID` names an instance, as on EKS; removed (with the
/// pods bound to it, which no kubelet finishes) when dropped.
struct SpotNode<'a> {
    e: &'a k8s_local::E2e,
    node: String,
}

impl<'a> SpotNode<'a> {
    fn create(e: &'a k8s_local::E2e, instance_id: &str) -> Self {
        let node = format!("gd-spot-{}", &e.ns[e.ns.len() - 6..]);
        e.apply(&json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node},
            "spec": {"providerID": format!("aws:///us-east-1a/{instance_id}")}
        }));
        SpotNode { e, node }
    }

    fn cordoned(&self) -> bool {
        self.e.get_json(&["node", &self.node])["spec"]["unschedulable"] == true
    }
}

impl Drop for SpotNode<'_> {
    fn drop(&mut self) {
        let k = |args: &[&str]| {
            let _ = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.e.kubeconfig)
                .args(args)
                .output();
        };
        k(&[
            "delete",
            "pods",
            "--all",
            "-n",
            &self.e.ns,
            "--force",
            "--grace-period=0",
        ]);
        k(&["delete", "node", &self.node, "--wait=false"]);
    }
}

/// `gameday recover --out OUT` with the test's AWS environment.
fn recover(out: &Path) -> std::process::Output {
    let mut c = cmd();
    aws_env(&mut c, None)
        .args(["recover", "--out", out.to_str().unwrap()])
        .output()
        .unwrap()
}
