//! A real moto EC2 server per test, on 127.0.0.1 and a free port, killed on drop.
//!
//! moto is the EC2 emulator the AWS target is tested against (`pip install "moto[server]"`).
//! When it is not installed the tests print `SKIPPED: moto not installed` and pass, except in
//! CI (`CI` set) or with `GAMEDAY_REQUIRE_MOTO=1`, where a missing moto fails the test: CI
//! installs it, so there the tests must really run.
//!
//! Test credentials are the fixed dummy values moto accepts, given to the SDK explicitly
//! (never through the process environment, which parallel tests share).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::{
    InstanceMarketOptionsRequest, InstanceType, MarketType, Placement,
    RequestSpotLaunchSpecification, ResourceType, SpotInstanceType, SpotMarketOptions, Tag,
    TagSpecification,
};
use gameday::targets::aws::spec::AwsTargetConfig;
use gameday::targets::aws::AwsTarget;

/// The account moto puts every resource in.
pub const MOTO_ACCOUNT: &str = "123456789012";
/// The AMI moto ships with (any id in its default list works).
const AMI: &str = "ami-12c6146b";
/// How long moto may take to answer after its process starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn python() -> String {
    std::env::var("GAMEDAY_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The port it listens on.
    pub addr: SocketAddr,
}

fn moto_installed() -> bool {
    Command::new(python())
        .args(["-c", "import moto.server, flask, werkzeug"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Moto {
    /// Start moto, or `None` (with `SKIPPED: ...` printed) when it is not installed outside
    /// CI.
    pub fn start() -> Option<Moto> {
        if !moto_installed() {
            let required = std::env::var_os("CI").is_some()
                || std::env::var("GAMEDAY_REQUIRE_MOTO").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "moto is required here (CI or GAMEDAY_REQUIRE_MOTO=1) but not importable: pip install \"moto[server]\""
            );
            eprintln!("SKIPPED: moto not installed (pip install \"moto[server]\")");
            return None;
        }
        // A port can be taken between probing and moto binding it; try a few.
        for _ in 0..3 {
            let port = super::free_port();
            let child = Command::new(python())
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn moto server");
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let mut moto = Moto {
                child,
                endpoint: format!("http://{addr}"),
                addr,
            };
            if moto.wait_ready() {
                return Some(moto);
            }
        }
        panic!("moto did not start on 127.0.0.1 in three tries");
    }

    fn wait_ready(&mut self) -> bool {
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // exited: port taken, most likely
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Turn on moto's IAM enforcement from now on (`/moto-api/reset-auth`): calls must then be
    /// signed by an access key moto issued, and are checked against its IAM policies.
    pub fn enforce_iam(&self) {
        let script = format!(
            "import urllib.request; urllib.request.urlopen(urllib.request.Request('{}/moto-api/reset-auth', data=b'0', headers={{'Content-Type': 'text/plain'}}, method='POST')).read()",
            self.endpoint
        );
        run_python(&script);
    }

    /// Make an IAM user in moto with an inline policy allowing exactly `actions` (on `*`),
    /// and return its access key (test values, moto-only).
    pub fn iam_user(&self, name: &str, actions: &[&str]) -> (String, String) {
        let actions = actions
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(",");
        let script = format!(
            r#"
import boto3, json
iam = boto3.client("iam", endpoint_url="{ep}", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
iam.create_user(UserName="{name}")
policy = {{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": [{actions}], "Resource": "*"}}]}}
iam.put_user_policy(UserName="{name}", PolicyName="gameday", PolicyDocument=json.dumps(policy))
key = iam.create_access_key(UserName="{name}")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#,
            ep = self.endpoint
        );
        let out = run_python(&script);
        let mut parts = out.split_whitespace();
        (
            parts.next().expect("access key id").to_owned(),
            parts.next().expect("secret").to_owned(),
        )
    }

    /// An EC2 client straight to moto, for test setup and out-of-band changes.
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        self.ec2_with(None).await
    }

    /// [`Moto::ec2`] signed with the given access key (after [`Moto::enforce_iam`]).
    pub async fn ec2_with(&self, keys: Option<(String, String)>) -> aws_sdk_ec2::Client {
        let sdk = sdk_config(keys).await;
        let conf = aws_sdk_ec2::config::Builder::from(&sdk)
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }
}

fn run_python(script: &str) -> String {
    let out = Command::new(python())
        .args(["-c", script])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK config with explicit test credentials (`testing`/`testing` unless given) and region
/// `us-east-1`, so no test depends on the machine's AWS environment.
pub async fn sdk_config(keys: Option<(String, String)>) -> SdkConfig {
    let (id, secret) = keys.unwrap_or_else(|| ("testing".to_owned(), "testing".to_owned()));
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(id, secret, None, None, "gameday-tests"))
        .load()
        .await
}

/// An AWS target pointed at `endpoint` (moto, or the fault proxy in front of it).
pub async fn target(endpoint: &str) -> AwsTarget {
    target_with(endpoint, None, AwsTargetConfig::default()).await
}

/// [`target`] with IAM keys and target settings.
pub async fn target_with(
    endpoint: &str,
    keys: Option<(String, String)>,
    mut config: AwsTargetConfig,
) -> AwsTarget {
    config.endpoint_url = Some(endpoint.to_owned());
    if config.allowed_account_ids.is_empty() {
        // moto's one account, as a scenario would name it.
        config.allowed_account_ids = vec![MOTO_ACCOUNT.to_owned()];
    }
    AwsTarget::from_sdk_config(config, &sdk_config(keys).await)
}

/// What kind of instance to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// On-demand.
    OnDemand,
    /// Spot, one-time request (RunInstances with spot market options).
    SpotOneTime,
}

/// Launch `count` instances with tag `team=<team>` in `zone`; returns their ids.
pub async fn launch(
    ec2: &aws_sdk_ec2::Client,
    kind: Kind,
    count: i32,
    team: &str,
    zone: &str,
) -> Vec<String> {
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("team").value(team).build())
        .build();
    let mut req = ec2
        .run_instances()
        .image_id(AMI)
        .instance_type(InstanceType::T3Micro)
        .min_count(count)
        .max_count(count)
        .tag_specifications(tags)
        .placement(Placement::builder().availability_zone(zone).build());
    if kind == Kind::SpotOneTime {
        req = req.instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(
                    SpotMarketOptions::builder()
                        .spot_instance_type(SpotInstanceType::OneTime)
                        .build(),
                )
                .build(),
        );
    }
    let out = req.send().await.expect("run instances in moto");
    let mut ids: Vec<String> = out
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// Launch one spot instance from a persistent spot request (stoppable, as in EC2), tagged
/// `team=<team>`; returns its id.
pub async fn launch_persistent_spot(ec2: &aws_sdk_ec2::Client, team: &str) -> String {
    let out = ec2
        .request_spot_instances()
        .instance_count(1)
        .r#type(SpotInstanceType::Persistent)
        .launch_specification(
            RequestSpotLaunchSpecification::builder()
                .image_id(AMI)
                .instance_type(InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .expect("request spot instances in moto");
    let request = out.spot_instance_requests()[0]
        .spot_instance_request_id()
        .expect("request id")
        .to_owned();
    let described = ec2
        .describe_spot_instance_requests()
        .spot_instance_request_ids(&request)
        .send()
        .await
        .expect("describe spot request");
    let id = described.spot_instance_requests()[0]
        .instance_id()
        .expect("moto launches the instance at once")
        .to_owned();
    ec2.create_tags()
        .resources(&id)
        .tags(Tag::builder().key("team").value(team).build())
        .send()
        .await
        .expect("tag instance");
    id
}

/// The state name of each of `ids`, as moto reports it now.
pub async fn states(ec2: &aws_sdk_ec2::Client, ids: &[String]) -> Vec<String> {
    let out = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .expect("describe instances");
    let mut found: Vec<(String, String)> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_owned(),
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    found.sort();
    ids.iter()
        .map(|id| {
            found
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| "not found".to_owned())
        })
        .collect()
}
