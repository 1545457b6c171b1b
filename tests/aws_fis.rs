//! `spot_interruption` with `method: fis`. moto has FIS experiment templates but no
//! experiments (no StartExperiment), so the FIS side runs against the SDK's own
//! `aws-smithy-mocks`, asserting every request gameday makes; EC2 (selection, ARNs from the
//! owner account) still runs against moto.

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_fis::operation::create_experiment_template::CreateExperimentTemplateOutput;
use aws_sdk_fis::operation::delete_experiment_template::DeleteExperimentTemplateOutput;
use aws_sdk_fis::operation::get_experiment::GetExperimentOutput;
use aws_sdk_fis::operation::list_experiment_templates::ListExperimentTemplatesOutput;
use aws_sdk_fis::operation::list_experiments::ListExperimentsOutput;
use aws_sdk_fis::operation::start_experiment::StartExperimentOutput;
use aws_sdk_fis::operation::stop_experiment::StopExperimentOutput;
use aws_sdk_fis::types::{
    Experiment, ExperimentState, ExperimentStatus, ExperimentSummary, ExperimentTemplate,
    ExperimentTemplateSummary,
};
use aws_sdk_fis::Client as Fis;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};
use gameday::targets::aws::fis::TOKEN_TAG;
use gameday::targets::aws::spec::{
    AwsFaultSpec, InstanceSelector, InterruptionBehavior, InterruptionMethod, SpotInterruptionSpec,
};
use gameday::targets::aws::spot_interruption::SpotUndo;
use gameday::targets::Target;

use crate::support::moto::{self, launch, states, Kind, Moto};

const ROLE: &str = "arn:aws:iam::123456789012:role/gameday-fis";

fn fis_client(rules: &[&Rule]) -> Fis {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_fis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    Fis::from_conf(conf)
}

fn spec() -> AwsFaultSpec {
    AwsFaultSpec::SpotInterruption(SpotInterruptionSpec {
        select: InstanceSelector {
            tags: [("team".to_owned(), "shop".to_owned())].into(),
            ..Default::default()
        },
        notice: "2m".parse().unwrap(),
        behavior: InterruptionBehavior::Terminate,
        method: InterruptionMethod::Fis,
        fis_role_arn: Some(ROLE.to_owned()),
        acknowledge_irreversible: true,
    })
}

#[tokio::test]
async fn fis_method_starts_a_one_off_experiment_with_the_real_spot_action() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let ec2 = moto.ec2().await;
    let spot = launch(&ec2, Kind::SpotOneTime, 1, "shop", "us-east-1a").await;
    let expected_arn = format!("arn:aws:ec2:us-east-1:123456789012:instance/{}", spot[0]);

    let arn = expected_arn.clone();
    let create = mock!(Fis::create_experiment_template)
        .match_requests(move |req| {
            let action = &req.actions().unwrap()["interrupt"];
            let target = &req.targets().unwrap()["SpotInstances"];
            action.action_id() == "aws:ec2:send-spot-instance-interruptions"
                && action.parameters().unwrap()["durationBeforeInterruption"] == "PT2M"
                && target.resource_type() == "aws:ec2:spot-instance"
                && target.resource_arns() == [arn.clone()]
                && req.role_arn() == Some(ROLE)
                && req.tags().is_some_and(|t| t.contains_key(TOKEN_TAG))
        })
        .then_output(|| {
            CreateExperimentTemplateOutput::builder()
                .experiment_template(ExperimentTemplate::builder().id("EXT1").build())
                .build()
        });
    let start = mock!(Fis::start_experiment)
        .match_requests(|req| req.experiment_template_id() == Some("EXT1"))
        .then_output(|| {
            StartExperimentOutput::builder()
                .experiment(Experiment::builder().id("EXP1").build())
                .build()
        });
    let get = mock!(Fis::get_experiment)
        .match_requests(|req| req.id() == Some("EXP1"))
        .then_output(|| {
            GetExperimentOutput::builder()
                .experiment(
                    Experiment::builder()
                        .id("EXP1")
                        .state(
                            ExperimentState::builder()
                                .status(ExperimentStatus::Completed)
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let delete = mock!(Fis::delete_experiment_template)
        .match_requests(|req| req.id() == Some("EXT1"))
        .then_output(|| DeleteExperimentTemplateOutput::builder().build());

    let target = moto::target(&moto.endpoint)
        .await
        .with_fis_client(fis_client(&[&create, &start, &get, &delete]));
    let fault = target.fault("spot-fis", spec()).unwrap();
    let resolution = fault.resolve().await.unwrap();
    assert!(
        resolution.notes.iter().any(|n| n.contains("method: fis")),
        "plan says which method: {resolution:?}"
    );
    let prepared = fault.prepare().await.unwrap();
    assert!(prepared.irreversible);
    let undo: SpotUndo = serde_json::from_value(prepared.undo.clone()).unwrap();
    let record = undo.fis.clone().expect("fis record in the ledger");
    assert_eq!(record.arns, vec![expected_arn]);

    fault
        .inject(&prepared, SystemTime::now() + Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(create.num_calls(), 1);
    assert_eq!(start.num_calls(), 1);
    assert_eq!(get.num_calls(), 1);
    assert_eq!(delete.num_calls(), 1);
    // gameday did not touch EC2 itself: FIS does the interruption.
    assert_eq!(states(&ec2, &spot).await, vec!["running"]);

    // Revert in a "fresh process", from the ledger record alone: the experiment is found by
    // its token tag and stopped, the template deleted.
    let token = record.token.clone();
    let t = token.clone();
    let list = mock!(Fis::list_experiments).then_output(move || {
        ListExperimentsOutput::builder()
            .experiments(
                ExperimentSummary::builder()
                    .id("EXP-OTHER")
                    .state(
                        ExperimentState::builder()
                            .status(ExperimentStatus::Running)
                            .build(),
                    )
                    .tags(TOKEN_TAG, "someone-else")
                    .build(),
            )
            .experiments(
                ExperimentSummary::builder()
                    .id("EXP1")
                    .state(
                        ExperimentState::builder()
                            .status(ExperimentStatus::Running)
                            .build(),
                    )
                    .tags(TOKEN_TAG, t.clone())
                    .build(),
            )
            .build()
    });
    let stop = mock!(Fis::stop_experiment)
        .match_requests(|req| req.id() == Some("EXP1"))
        .then_output(|| StopExperimentOutput::builder().build());
    let t = token.clone();
    let list_templates = mock!(Fis::list_experiment_templates).then_output(move || {
        ListExperimentTemplatesOutput::builder()
            .experiment_templates(
                ExperimentTemplateSummary::builder()
                    .id("EXT1")
                    .tags(TOKEN_TAG, t.clone())
                    .build(),
            )
            .build()
    });
    let delete_again = mock!(Fis::delete_experiment_template)
        .match_requests(|req| req.id() == Some("EXT1"))
        .then_output(|| DeleteExperimentTemplateOutput::builder().build());
    let recovering = moto::target(&moto.endpoint)
        .await
        .with_fis_client(fis_client(&[&list, &stop, &list_templates, &delete_again]));
    recovering
        .revert("spot_interruption", &prepared.undo)
        .await
        .unwrap();
    assert_eq!(stop.num_calls(), 1, "only our experiment is stopped");
    assert_eq!(delete_again.num_calls(), 1);
}

#[test]
fn fis_refuses_a_notice_outside_two_to_fifteen_minutes() {
    let AwsFaultSpec::SpotInterruption(mut s) = spec() else {
        unreachable!()
    };
    s.notice = "30s".parse().unwrap();
    let errors = AwsFaultSpec::SpotInterruption(s).validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("2m to 15m"));
}
