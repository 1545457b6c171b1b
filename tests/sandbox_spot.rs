//! The sandbox's spot interruption: the EC2-compatible metadata endpoint over real HTTP, and
//! real child processes terminated after the notice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use gameday::targets::local::net::SandboxNet;
use gameday::targets::local::spec::SpotSpec;
use gameday::targets::local::spot::{InstanceTerminator, SpotAction, INSTANCE_ACTION_PATH};
use gameday::targets::local::spot_fault::{self, SpotFault};
use gameday::targets::{Fault, TargetError};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::sandbox_support::http_get;

/// Ends real child processes by instance, as the fleet supervisor does.
#[derive(Default)]
struct KillChildren {
    by_instance: Mutex<BTreeMap<String, Vec<Child>>>,
}

#[async_trait::async_trait]
impl InstanceTerminator for KillChildren {
    async fn terminate_instance(
        &self,
        instance: &str,
        _action: SpotAction,
    ) -> Result<Vec<String>, TargetError> {
        let children = self
            .by_instance
            .lock()
            .unwrap()
            .remove(instance)
            .unwrap_or_default();
        let mut ended = Vec::new();
        for mut child in children {
            let pid = child.id().unwrap_or(0);
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let status = child.wait().await.map_err(|e| TargetError::Op {
                action: "wait for".into(),
                object: format!("pid {pid}"),
                source: e.into(),
            })?;
            ended.push(format!("pid {pid} ({status})"));
        }
        Ok(ended)
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("300")
        .kill_on_drop(true)
        .spawn()
        .expect("sleep runs")
}

fn alive(pid: u32) -> bool {
    // Signal 0 checks existence; a reaped child is gone.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[tokio::test]
async fn metadata_answers_404_until_noticed_then_ec2s_json_and_the_instance_is_terminated() {
    let cancel = CancellationToken::new();
    let sandbox = SandboxNet::new(cancel.clone());
    let a = sandbox.start_instance_endpoint("spot-a").await.unwrap();
    let b = sandbox.start_instance_endpoint("spot-b").await.unwrap();
    let terminator = Arc::new(KillChildren::default());
    let (a1, a2, b1) = (sleeper(), sleeper(), sleeper());
    let a_pids = [a1.id().unwrap(), a2.id().unwrap()];
    let b_pid = b1.id().unwrap();
    terminator.by_instance.lock().unwrap().extend([
        ("spot-a".to_string(), vec![a1, a2]),
        ("spot-b".to_string(), vec![b1]),
    ]);
    sandbox.set_terminator(terminator.clone());

    let url = format!("{}{INSTANCE_ACTION_PATH}", a.url());
    assert_eq!(http_get(&url).await.unwrap().0, 404);
    let id = http_get(&format!("{}/latest/meta-data/instance-id", b.url()))
        .await
        .unwrap();
    assert_eq!(id, (200, "spot-b".to_string()));

    let spec: SpotSpec = serde_saphyr::from_str("instances: [spot-a]\nnotice: 1500ms\n").unwrap();
    let fault = SpotFault::new("reclaim", spec, sandbox.clone());
    let prepared = fault.prepare().await.unwrap();
    assert!(prepared.irreversible);
    // While noticed, an instance cannot be picked again.
    let again: SpotSpec = serde_saphyr::from_str("instances: [spot-a]\n").unwrap();
    let early = SpotFault::new("again", again, sandbox.clone());
    assert_eq!(prepared.targets, vec!["spot-a".to_string()]);
    fault
        .inject(&prepared, SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();

    assert!(
        early.resolve().await.is_err(),
        "a noticed instance was picked again"
    );
    let (status, body) = http_get(&url).await.unwrap();
    assert_eq!(status, 200);
    let notice: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(notice["action"], "terminate");
    let when = time::OffsetDateTime::parse(
        notice["time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(when > time::OffsetDateTime::now_utc() - time::Duration::seconds(2));
    // The other instance is not noticed, and its process keeps running.
    assert_eq!(
        http_get(&format!("{}{INSTANCE_ACTION_PATH}", b.url()))
            .await
            .unwrap()
            .0,
        404
    );
    // During the notice, the processes still run.
    assert!(a_pids.iter().all(|p| alive(*p)));

    // After the notice, they are gone (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while a_pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        a_pids.iter().all(|p| !alive(*p)),
        "spot-a processes survived the notice"
    );
    assert!(alive(b_pid), "spot-b must not be touched");

    // Revert says there is nothing to undo, and does not fail.
    spot_fault::revert(&sandbox, &prepared.undo).unwrap();
    // What comes up under that name next is a fresh instance: no notice (bounded wait, the
    // reset follows the termination).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while http_get(&url).await.unwrap().0 != 404 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_get(&url).await.unwrap().0, 404);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_count_picks_among_instances_not_yet_noticed() {
    let cancel = CancellationToken::new();
    let sandbox = SandboxNet::new(cancel.clone());
    for i in ["i-1", "i-2", "i-3"] {
        sandbox.start_instance_endpoint(i).await.unwrap();
    }
    let spec: SpotSpec = serde_saphyr::from_str("instances: 2\nnotice: 10s\n").unwrap();
    let r = SpotFault::new("two", spec, sandbox.clone())
        .resolve()
        .await
        .unwrap();
    assert_eq!(r.targets.len(), 2);
    assert_eq!(r.eligible, 3);
    let spec: SpotSpec = serde_saphyr::from_str("instances: 4\n").unwrap();
    let err = SpotFault::new("four", spec, sandbox.clone())
        .resolve()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("4 instance(s) asked"), "{err}");
    sandbox.shutdown().await;
}
