//! `ec2_stop`, `ec2_reboot`, `ec2_terminate` and the `plan` preflight against moto's EC2
//! server, with the fault proxy for the errors moto never gives.

use std::time::{Duration, SystemTime};

use gameday::targets::aws::spec::{
    AwsFaultSpec, AwsTargetConfig, Ec2RebootSpec, Ec2StopSpec, Ec2TerminateSpec, InstanceSelector,
    Lifecycle, SelectMode,
};
use gameday::targets::{Severity, Target, TargetError};

use crate::support::ec2_fault_proxy::{FaultProxy, Rule};
use crate::support::moto::{self, launch, states, Kind, Moto};

fn team(team: &str) -> InstanceSelector {
    InstanceSelector {
        tags: [("team".to_owned(), team.to_owned())].into(),
        mode: SelectMode::Percent,
        percent: Some(100),
        ..Default::default()
    }
}

fn stop(team_name: &str) -> AwsFaultSpec {
    AwsFaultSpec::Ec2Stop(Ec2StopSpec {
        select: team(team_name),
        hibernate: false,
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
async fn ec2_stop_then_revert_starts_them_again_idempotently() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let dr = launch(&ec2, Kind::OnDemand, 2, "dr", "us-east-1a").await;
    let other = launch(&ec2, Kind::OnDemand, 1, "dr", "us-east-1b").await;
    let target = moto::target(&proxy.endpoint).await;
    let mut select = team("dr");
    select.availability_zones = vec!["us-east-1a".to_owned()];
    let fault = target
        .fault(
            "zone-a-down",
            AwsFaultSpec::Ec2Stop(Ec2StopSpec {
                select,
                hibernate: false,
            }),
        )
        .unwrap();
    let prepared = fault.prepare().await.unwrap();
    assert_eq!(prepared.targets, dr);
    assert!(!prepared.irreversible);
    fault.inject(&prepared, far()).await.unwrap();
    assert_eq!(states(&ec2, &dr).await, vec!["stopped", "stopped"]);
    assert_eq!(states(&ec2, &other).await, vec!["running"]);

    target.revert(fault.kind(), &prepared.undo).await.unwrap();
    for s in states(&ec2, &dr).await {
        assert!(s == "running" || s == "pending", "{s}");
    }
    target.revert(fault.kind(), &prepared.undo).await.unwrap();
    assert_eq!(
        proxy.calls("StartInstances").len(),
        1,
        "second revert starts nothing"
    );
}

#[tokio::test]
async fn revert_never_starts_a_terminated_instance() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let ids = launch(&ec2, Kind::OnDemand, 2, "dr", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let fault = target.fault("stop", stop("dr")).unwrap();
    let prepared = fault.prepare().await.unwrap();
    fault.inject(&prepared, far()).await.unwrap();
    // Someone terminates one of the stopped instances; moto would "start" it again.
    ec2.terminate_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    target.revert(fault.kind(), &prepared.undo).await.unwrap();
    let starts = proxy.calls("StartInstances");
    assert_eq!(starts.len(), 1);
    assert!(
        !starts[0].body.contains(ids[0].as_str()),
        "{}",
        starts[0].body
    );
    assert!(starts[0].body.contains(ids[1].as_str()));
    assert_eq!(states(&ec2, &ids[..1]).await, vec!["terminated"]);
}

#[tokio::test]
async fn ec2_stop_refuses_one_time_spot_instances_that_moto_would_stop() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let ids = launch(&ec2, Kind::SpotOneTime, 1, "batch", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let fault = target.fault("stop", stop("batch")).unwrap();
    let err = fault.prepare().await.unwrap_err();
    assert!(format!("{err:#}").contains("one-time"), "{err:#}");
    let findings = target.preflight(&[fault.as_ref()]).await.unwrap();
    assert!(
        findings.iter().any(|f| f.severity == Severity::Error
            && f.message.contains("refusing to stop spot instance")),
        "{findings:?}"
    );
    assert!(proxy.calls("StopInstances").is_empty());
    assert_eq!(states(&ec2, &ids).await, vec!["running"]);
}

#[tokio::test]
async fn ec2_terminate_needs_acknowledgement_and_is_irreversible() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let ids = launch(&ec2, Kind::OnDemand, 1, "dr", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let unacknowledged = AwsFaultSpec::Ec2Terminate(Ec2TerminateSpec {
        select: team("dr"),
        acknowledge_irreversible: false,
    });
    let Err(TargetError::Invalid(msg)) = target.fault("kill", unacknowledged) else {
        panic!("an unacknowledged termination must be refused")
    };
    assert!(msg.contains("acknowledge_irreversible"), "{msg}");

    let fault = target
        .fault(
            "kill",
            AwsFaultSpec::Ec2Terminate(Ec2TerminateSpec {
                select: team("dr"),
                acknowledge_irreversible: true,
            }),
        )
        .unwrap();
    let resolution = fault.resolve().await.unwrap();
    assert!(resolution.notes.iter().any(|n| n.contains("IRREVERSIBLE")));
    let prepared = fault.prepare().await.unwrap();
    assert!(prepared.irreversible);
    fault.inject(&prepared, far()).await.unwrap();
    assert_eq!(states(&ec2, &ids).await, vec!["terminated"]);
    target.revert(fault.kind(), &prepared.undo).await.unwrap();
    assert_eq!(states(&ec2, &ids).await, vec!["terminated"]);
    assert!(proxy.calls("StartInstances").is_empty());
}

/// Regression (issue #13): `max_targets` capped only the instances about to be hit, so a
/// second `ec2_stop` (a later round of `every:`) stopped more while the first were still
/// stopped. Stopped instances that match now use part of the cap, and never are victims.
#[tokio::test]
async fn the_cap_counts_instances_already_stopped() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let ids = launch(&ec2, Kind::OnDemand, 3, "cap", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let mut select = team("cap");
    select.mode = SelectMode::One;
    select.percent = None;
    select.max_targets = Some(2);
    let spec = || {
        AwsFaultSpec::Ec2Stop(Ec2StopSpec {
            select: select.clone(),
            hibernate: false,
        })
    };
    let first = target.fault("stop-1", spec()).unwrap();
    let p1 = first.prepare().await.unwrap();
    first.inject(&p1, far()).await.unwrap();
    // One stopped: the next round may stop one more, never the stopped one.
    let second = target.fault("stop-2", spec()).unwrap();
    let r = second.resolve().await.unwrap();
    assert_eq!(r.eligible, 2, "{r:?}");
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("1 matching instance(s) already")),
        "{r:?}"
    );
    let p2 = second.prepare().await.unwrap();
    assert_ne!(p1.targets, p2.targets);
    second.inject(&p2, far()).await.unwrap();
    // Two stopped fill a cap of two: the third round is refused, naming why.
    let third = target.fault("stop-3", spec()).unwrap();
    let e = third.prepare().await.unwrap_err();
    assert!(
        e.to_string().contains("2 matching instance(s) are already pending, stopping or stopped, which fills max_targets 2"),
        "{e}"
    );
    let mut st = states(&ec2, &ids).await;
    st.sort();
    assert_eq!(st, vec!["running", "stopped", "stopped"]);
}

#[tokio::test]
async fn ec2_reboot_reboots_the_selected_instances_only() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let ids = launch(&ec2, Kind::OnDemand, 3, "web", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let mut select = team("web");
    select.mode = SelectMode::Count;
    select.count = Some(3);
    select.percent = None;
    select.max_targets = Some(2);
    select.lifecycle = Lifecycle::OnDemand;
    let fault = target
        .fault("reboot", AwsFaultSpec::Ec2Reboot(Ec2RebootSpec { select }))
        .unwrap();
    let resolution = fault.resolve().await.unwrap();
    assert_eq!((resolution.eligible, resolution.cap), (3, Some(2)));
    let prepared = fault.prepare().await.unwrap();
    assert_eq!(prepared.targets.len(), 2, "capped by max_targets");
    fault.inject(&prepared, far()).await.unwrap();
    let reboots = proxy.calls("RebootInstances");
    assert_eq!(reboots.len(), 1);
    let hit = ids
        .iter()
        .filter(|id| reboots[0].body.contains(id.as_str()))
        .count();
    assert_eq!(hit, 2);
    assert_eq!(states(&ec2, &ids).await, vec!["running"; 3]);
}

#[tokio::test]
async fn plan_dry_runs_every_call_without_acting() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let ids = launch(&ec2, Kind::OnDemand, 2, "dr", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let stop_fault = target.fault("stop", stop("dr")).unwrap();
    let kill = target
        .fault(
            "kill",
            AwsFaultSpec::Ec2Terminate(Ec2TerminateSpec {
                select: team("dr"),
                acknowledge_irreversible: true,
            }),
        )
        .unwrap();
    let findings = target
        .preflight(&[stop_fault.as_ref(), kill.as_ref()])
        .await
        .unwrap();
    assert!(
        findings.iter().all(|f| f.severity == Severity::Warning),
        "{findings:?}"
    );
    assert!(findings.iter().any(|f| f
        .message
        .contains("fault kill (ec2_terminate) is irreversible")));
    let dry: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.dry_run)
        .map(|s| s.action)
        .collect();
    for action in [
        "DescribeInstances",
        "StopInstances",
        "StartInstances",
        "TerminateInstances",
    ] {
        assert!(dry.iter().any(|a| a == action), "{action} dry-run: {dry:?}");
    }
    for action in ["StopInstances", "StartInstances", "TerminateInstances"] {
        assert!(proxy.calls(action).is_empty(), "{action} really called");
    }
    assert_eq!(states(&ec2, &ids).await, vec!["running", "running"]);
}

#[tokio::test]
async fn plan_reports_a_permission_moto_iam_denies() {
    let Some((moto, _proxy, ec2)) = setup().await else {
        return;
    };
    let ids = launch(&ec2, Kind::OnDemand, 1, "dr", "us-east-1a").await;
    let keys = moto.iam_user(
        "gameday",
        &[
            "ec2:DescribeInstances",
            "ec2:StopInstances",
            "ec2:StartInstances",
        ],
    );
    moto.enforce_iam();
    let target = moto::target_with(
        &moto.endpoint,
        Some(keys.clone()),
        AwsTargetConfig::default(),
    )
    .await;
    let allowed = target.fault("stop", stop("dr")).unwrap();
    let denied = target
        .fault(
            "kill",
            AwsFaultSpec::Ec2Terminate(Ec2TerminateSpec {
                select: team("dr"),
                acknowledge_irreversible: true,
            }),
        )
        .unwrap();
    let findings = target
        .preflight(&[allowed.as_ref(), denied.as_ref()])
        .await
        .unwrap();
    let errors: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(errors.len(), 1, "{findings:?}");
    assert!(
        errors[0].contains("fault kill: missing permission ec2:TerminateInstances"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("AccessDenied"), "{}", errors[0]);
    // The old test key is refused now: moto really enforces IAM.
    assert!(ec2.describe_instances().send().await.is_err());
    let ec2 = moto.ec2_with(Some(keys)).await;
    assert_eq!(states(&ec2, &ids).await, vec!["running"]);
}

#[tokio::test]
async fn plan_treats_ec2s_unauthorized_operation_as_a_missing_permission() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    launch(&ec2, Kind::OnDemand, 1, "dr", "us-east-1a").await;
    proxy.add(Rule {
        dry_run: Some(true),
        ..Rule::always("StartInstances", "UnauthorizedOperation")
    });
    let target = moto::target(&proxy.endpoint).await;
    let fault = target.fault("stop", stop("dr")).unwrap();
    let findings = target.preflight(&[fault.as_ref()]).await.unwrap();
    let errors: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(errors.len(), 1, "{findings:?}");
    assert!(
        errors[0].contains("missing permission ec2:StartInstances"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("UnauthorizedOperation"), "{}", errors[0]);
}

#[tokio::test]
async fn ec2_refusals_moto_never_gives_end_with_clear_messages() {
    let Some((_moto, proxy, ec2)) = setup().await else {
        return;
    };
    let ids = launch(&ec2, Kind::OnDemand, 1, "dr", "us-east-1a").await;
    let target = moto::target(&proxy.endpoint).await;
    let fault = target.fault("stop", stop("dr")).unwrap();
    let prepared = fault.prepare().await.unwrap();

    proxy.add(Rule::always("StopInstances", "IncorrectInstanceState"));
    let msg = format!("{:#}", fault.inject(&prepared, far()).await.unwrap_err());
    assert!(
        msg.contains("refused by ec2 in the instance's current state"),
        "{msg}"
    );
    assert!(msg.contains(ids[0].as_str()), "{msg}");

    proxy.clear();
    proxy.add(Rule::always("StopInstances", "UnsupportedOperation"));
    let msg = format!("{:#}", fault.inject(&prepared, far()).await.unwrap_err());
    assert!(
        msg.contains("is not supported by ec2 for this instance"),
        "{msg}"
    );
    assert_eq!(states(&ec2, &ids).await, vec!["running"]);
}

#[tokio::test]
async fn instances_of_another_account_are_refused() {
    let Some((moto, _proxy, ec2)) = setup().await else {
        return;
    };
    launch(&ec2, Kind::OnDemand, 1, "dr", "us-east-1a").await;
    let config = AwsTargetConfig {
        allowed_account_ids: vec!["111111111111".to_owned()],
        ..Default::default()
    };
    let target = moto::target_with(&moto.endpoint, None, config).await;
    let fault = target.fault("stop", stop("dr")).unwrap();
    let msg = format!("{:#}", fault.prepare().await.unwrap_err());
    assert!(msg.contains("belongs to account 123456789012"), "{msg}");
    assert!(msg.contains("allowed_account_ids"), "{msg}");
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_is_unreachable() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = moto::target(&format!("http://127.0.0.1:{port}")).await;
    match target.check_reachable().await {
        Err(TargetError::Unreachable { target, reason }) => {
            assert_eq!(target, "aws");
            assert!(reason.contains("DescribeInstances"), "{reason}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    let config = target.ledger_config();
    assert_eq!(config["region"], "us-east-1");
    let text = config.to_string();
    assert!(
        !text.contains("testing"),
        "no credentials in the ledger: {text}"
    );
}
