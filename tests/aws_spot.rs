//! `spot_interruption` against moto's EC2 server: spot-only selection, the notice → drain →
//! interruption order and the notice period, stop behaviour and its revert, and mid-run API
//! errors (throttling, an instance gone) ending with a clear message and no node cordoned.
//!
//! The Kubernetes side is a recording [`SpotNoticeHandler`] here: the Kubernetes target is
//! built on another branch and plugs into the same trait.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use gameday::targets::aws::notice::SpotNoticeHandler;
use gameday::targets::aws::spec::{
    AwsFaultSpec, InstanceSelector, InterruptionBehavior, InterruptionMethod, SelectMode,
    SpotInterruptionSpec,
};
use gameday::targets::aws::spot_interruption::SpotUndo;
use gameday::targets::aws::AwsTarget;
use gameday::targets::Target;
use serde_json::{json, Value};

use crate::support::ec2_fault_proxy::{FaultProxy, Rule};
use crate::support::moto::{self, launch, launch_persistent_spot, states, Kind, Moto};

/// A notice handler that records what it is asked, and which "nodes" are cordoned.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<(Instant, String)>>,
    cordoned: Mutex<BTreeSet<String>>,
    fail_notice_for: Option<String>,
}

impl Recorder {
    fn log(&self, e: String) {
        self.events.lock().unwrap().push((Instant::now(), e));
    }
    fn events(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }
    fn when(&self, event: &str) -> Instant {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(_, e)| e == event)
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no event {event}"))
    }
    fn cordoned(&self) -> BTreeSet<String> {
        self.cordoned.lock().unwrap().clone()
    }
}

#[async_trait]
impl SpotNoticeHandler for Recorder {
    async fn prepare_notices(
        &self,
        instance_ids: &[String],
    ) -> anyhow::Result<Vec<(String, Value)>> {
        Ok(instance_ids
            .iter()
            .map(|id| {
                self.log(format!("prepare {id}"));
                (id.clone(), json!({ "node": format!("node-{id}") }))
            })
            .collect())
    }
    async fn on_notice(&self, instance_id: &str, undo: &Value) -> anyhow::Result<()> {
        let node = undo["node"].as_str().unwrap().to_owned();
        self.cordoned.lock().unwrap().insert(node.clone());
        self.log(format!("drain {node}"));
        if self.fail_notice_for.as_deref() == Some(instance_id) {
            anyhow::bail!("eviction of pod shop/web-1 on {node} refused by a disruption budget");
        }
        Ok(())
    }
    async fn undo(&self, undo: &Value) -> anyhow::Result<()> {
        let node = undo["node"].as_str().unwrap().to_owned();
        self.cordoned.lock().unwrap().remove(&node);
        self.log(format!("uncordon {node}"));
        Ok(())
    }
}

fn spot_spec(team: &str, notice: &str, behavior: InterruptionBehavior) -> AwsFaultSpec {
    AwsFaultSpec::SpotInterruption(SpotInterruptionSpec {
        select: InstanceSelector {
            tags: [("team".to_owned(), team.to_owned())].into(),
            mode: SelectMode::Percent,
            percent: Some(100),
            ..Default::default()
        },
        notice: notice.parse().unwrap(),
        behavior,
        method: InterruptionMethod::Ec2,
        fis_role_arn: None,
        acknowledge_irreversible: behavior == InterruptionBehavior::Terminate,
    })
}

fn far() -> SystemTime {
    SystemTime::now() + Duration::from_secs(600)
}

async fn setup() -> Option<(Moto, FaultProxy, aws_sdk_ec2::Client)> {
    let moto = Moto::start()?;
    let proxy = FaultProxy::start(moto.addr).await;
    let ec2 = moto.ec2().await;
    Some((moto, proxy, ec2))
}

#[tokio::test]
async fn spot_interruption_selects_spot_instances_only_by_lifecycle_field() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let spot = launch(&ec2, Kind::SpotOneTime, 2, "shop", "us-east-1a").await;
    let on_demand = launch(&ec2, Kind::OnDemand, 2, "shop", "us-east-1a").await;
    let other_team = launch(&ec2, Kind::SpotOneTime, 1, "pay", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let fault = target
        .fault(
            "spot",
            spot_spec("shop", "1s", InterruptionBehavior::Terminate),
        )
        .unwrap();
    let resolution = fault.resolve().await.unwrap();
    assert_eq!(resolution.eligible, 2, "{resolution:?}");
    assert_eq!(resolution.targets, spot);
    assert!(resolution.notes.iter().any(|n| n.contains("method: ec2")));
    assert!(resolution.notes.iter().any(|n| n.contains("IRREVERSIBLE")));
    // The lifecycle split is made client-side: the `instance-lifecycle` filter (HTTP 500 in
    // moto) is never sent.
    assert!(proxy
        .seen()
        .iter()
        .all(|s| !s.body.contains("instance-lifecycle")));
    for id in on_demand.iter().chain(&other_team) {
        assert!(!resolution.targets.contains(id));
    }
    // An on-demand-only pool has nothing to interrupt.
    let fault = target
        .fault(
            "none",
            spot_spec("nobody", "1s", InterruptionBehavior::Terminate),
        )
        .unwrap();
    let err = fault.resolve().await.unwrap_err().to_string();
    assert!(err.contains("no running spot instance matches"), "{err}");
}

#[tokio::test]
async fn notice_then_drain_then_terminate_after_the_notice_period() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let spot = launch(&ec2, Kind::SpotOneTime, 2, "shop", "us-east-1b").await;
    let recorder = Arc::new(Recorder::default());
    let target = moto::target(&proxy.endpoint)
        .await
        .with_notice_handler(recorder.clone());
    let fault = target
        .fault(
            "spot",
            spot_spec("shop", "2s", InterruptionBehavior::Terminate),
        )
        .unwrap();
    let prepared = fault.prepare().await.unwrap();
    assert!(prepared.irreversible);
    assert_eq!(prepared.targets, spot);
    let undo: SpotUndo = serde_json::from_value(prepared.undo.clone()).unwrap();
    assert_eq!(undo.notices.len(), 2);
    // Prepare only asked; nothing cordoned yet, nothing stopped.
    assert!(recorder.cordoned().is_empty());
    assert!(proxy.calls("TerminateInstances").is_empty());

    fault.inject(&prepared, far()).await.unwrap();

    let events = recorder.events();
    assert_eq!(
        events,
        vec![
            format!("prepare {}", spot[0]),
            format!("prepare {}", spot[1]),
            format!("drain node-{}", spot[0]),
            format!("drain node-{}", spot[1]),
        ]
    );
    let terminates = proxy.calls("TerminateInstances");
    assert_eq!(terminates.len(), 1, "one TerminateInstances for all");
    for id in &spot {
        assert!(terminates[0].body.contains(id.as_str()));
    }
    // The interruption comes after the notice period counted from the first drain.
    let first_notice = recorder.when(&format!("drain node-{}", spot[0]));
    assert!(terminates[0].at >= first_notice + Duration::from_secs(2) - Duration::from_millis(50));
    assert_eq!(states(&ec2, &spot).await, vec!["terminated", "terminated"]);
    assert!(proxy.calls("StopInstances").is_empty());

    // Revert of an irreversible interruption: nothing comes back, but no node stays cordoned.
    target.revert(fault.kind(), &prepared.undo).await.unwrap();
    assert!(recorder.cordoned().is_empty());
    assert_eq!(states(&ec2, &spot).await, vec!["terminated", "terminated"]);
    assert!(proxy.calls("StartInstances").is_empty());
}

#[tokio::test]
async fn stop_behaviour_is_refused_for_one_time_spot_and_reverted_for_persistent() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    launch(&ec2, Kind::SpotOneTime, 1, "batch", "us-east-1a").await;
    let persistent = launch_persistent_spot(&ec2, "web").await;
    let recorder = Arc::new(Recorder::default());
    let target = moto::target(&proxy.endpoint)
        .await
        .with_notice_handler(recorder.clone());

    // moto would stop a one-time spot instance; EC2 refuses, and so does gameday.
    let fault = target
        .fault(
            "batch",
            spot_spec("batch", "1s", InterruptionBehavior::Stop),
        )
        .unwrap();
    let err = fault.prepare().await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("refusing to stop spot instance"), "{msg}");
    assert!(msg.contains("one-time"), "{msg}");
    assert!(proxy.calls("StopInstances").is_empty());

    let fault = target
        .fault("web", spot_spec("web", "1s", InterruptionBehavior::Stop))
        .unwrap();
    let prepared = fault.prepare().await.unwrap();
    assert!(!prepared.irreversible);
    fault.inject(&prepared, far()).await.unwrap();
    assert_eq!(
        states(&ec2, std::slice::from_ref(&persistent)).await,
        vec!["stopped"]
    );
    assert_eq!(recorder.cordoned().len(), 1);

    target.revert(fault.kind(), &prepared.undo).await.unwrap();
    let state = states(&ec2, std::slice::from_ref(&persistent)).await;
    assert!(state == ["running"] || state == ["pending"], "{state:?}");
    assert!(recorder.cordoned().is_empty());
    // Idempotent: a second revert starts nothing more.
    target.revert(fault.kind(), &prepared.undo).await.unwrap();
    assert_eq!(proxy.calls("StartInstances").len(), 1);
}

#[tokio::test]
async fn throttling_at_the_interruption_ends_clearly_and_uncordons() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let spot = launch(&ec2, Kind::SpotOneTime, 1, "shop", "us-east-1a").await;
    let recorder = Arc::new(Recorder::default());
    let target = moto::target(&proxy.endpoint)
        .await
        .with_notice_handler(recorder.clone());
    let fault = target
        .fault(
            "spot",
            spot_spec("shop", "1s", InterruptionBehavior::Terminate),
        )
        .unwrap();
    let prepared = fault.prepare().await.unwrap();
    proxy.add(Rule::always("TerminateInstances", "RequestLimitExceeded"));

    let err = fault.inject(&prepared, far()).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("throttled by ec2 (RequestLimitExceeded)"),
        "{msg}"
    );
    // The SDK retried before giving up.
    assert!(proxy.calls("TerminateInstances").len() > 1);
    // The node was drained at the notice and is schedulable again; the instance lives.
    assert!(recorder
        .events()
        .contains(&format!("drain node-{}", spot[0])));
    assert!(recorder.cordoned().is_empty(), "{:?}", recorder.cordoned());
    assert_eq!(states(&ec2, &spot).await, vec!["running"]);
    // And the engine's revert from the ledger record is harmless afterwards.
    target.revert(fault.kind(), &prepared.undo).await.unwrap();
    assert!(recorder.cordoned().is_empty());
}

#[tokio::test]
async fn one_throttled_call_is_absorbed_by_the_sdk_retry() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let spot = launch(&ec2, Kind::SpotOneTime, 1, "shop", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let fault = target
        .fault(
            "spot",
            spot_spec("shop", "10ms", InterruptionBehavior::Terminate),
        )
        .unwrap();
    let prepared = fault.prepare().await.unwrap();
    proxy.add(Rule {
        times: Some(1),
        ..Rule::always("TerminateInstances", "RequestLimitExceeded")
    });
    fault.inject(&prepared, far()).await.unwrap();
    let calls = proxy.calls("TerminateInstances");
    assert_eq!(calls.len(), 2);
    assert!(calls[0].faulted && !calls[1].faulted);
    assert_eq!(states(&ec2, &spot).await, vec!["terminated"]);
}

#[tokio::test]
async fn an_instance_gone_during_the_notice_ends_clearly_and_uncordons() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let spot = launch(&ec2, Kind::SpotOneTime, 2, "shop", "us-east-1a").await;
    let recorder = Arc::new(Recorder::default());
    let target = moto::target(&proxy.endpoint)
        .await
        .with_notice_handler(recorder.clone());
    let fault = target
        .fault(
            "spot",
            spot_spec("shop", "1s", InterruptionBehavior::Terminate),
        )
        .unwrap();
    let prepared = fault.prepare().await.unwrap();
    let inject = tokio::spawn({
        let prepared = prepared.clone();
        async move { fault.inject(&prepared, far()).await }
    });
    // Someone else terminates one instance while the notice runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ec2.terminate_instances()
        .instance_ids(&spot[1])
        .send()
        .await
        .unwrap();
    let err = inject.await.unwrap().unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!("instance {} is gone (terminated)", spot[1])),
        "{msg}"
    );
    assert!(recorder.cordoned().is_empty(), "{:?}", recorder.cordoned());
    assert!(proxy.calls("TerminateInstances").is_empty());
    assert_eq!(states(&ec2, &spot[..1]).await, vec!["running"]);
}

#[tokio::test]
async fn a_failed_drain_stops_the_interruption_and_uncordons_every_node() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let spot = launch(&ec2, Kind::SpotOneTime, 2, "shop", "us-east-1a").await;
    let recorder = Arc::new(Recorder {
        fail_notice_for: Some(spot[1].clone()),
        ..Default::default()
    });
    let target: AwsTarget = moto::target(&proxy.endpoint)
        .await
        .with_notice_handler(recorder.clone());
    let fault = target
        .fault(
            "spot",
            spot_spec("shop", "1s", InterruptionBehavior::Terminate),
        )
        .unwrap();
    let prepared = fault.prepare().await.unwrap();
    let err = fault.inject(&prepared, far()).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!("spot notice for instance {}", spot[1])),
        "{msg}"
    );
    assert!(msg.contains("disruption budget"), "{msg}");
    assert!(recorder.cordoned().is_empty(), "{:?}", recorder.cordoned());
    assert!(proxy.calls("TerminateInstances").is_empty());
    assert_eq!(states(&ec2, &spot).await, vec!["running", "running"]);
}
