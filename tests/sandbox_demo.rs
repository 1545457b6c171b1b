//! The whole local plane end to end: the lead's fleet supervisor running the built-in demo
//! service as real processes, behind gameday's proxies and DNS, with each fault kind of the
//! sandbox showing its effect on the frontend's answers and its absence after revert.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gameday::targets::local::config::LocalTarget;
use gameday::targets::local::dns_fault::{self, DnsFault};
use gameday::targets::local::fleet::Fleet;
use gameday::targets::local::net::{instance_name, SandboxNet};
use gameday::targets::local::network_fault::{self, NetworkFault};
use gameday::targets::local::spot_fault::SpotFault;
use gameday::targets::Fault;
use tokio_util::sync::CancellationToken;

use crate::sandbox_support::http_get;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(frontend_port: u16, backend_port: u16) -> LocalTarget {
    let exe = env!("CARGO_BIN_EXE_gameday");
    let yaml = format!(
        r#"
services:
  - name: backend
    command: ["{exe}", "demo-service", "backend"]
    replicas: 2
    port: {backend_port}
    health: /readyz
  - name: frontend
    command: ["{exe}", "demo-service", "frontend", "--backend-timeout", "1s"]
    replicas: 1
    port: {frontend_port}
    health: /readyz
    env:
      GAMEDAY_DEMO_BACKEND: "backend.gameday.local:{backend_port}"
startup_timeout: 20s
"#
    );
    serde_saphyr::from_str(&yaml).unwrap()
}

/// Status of `GET /` on the frontend's service address.
async fn front(port: u16) -> u16 {
    match http_get(&format!("http://127.0.0.1:{port}/")).await {
        Ok((status, _)) => status,
        Err(e) => panic!("frontend did not answer: {e}"),
    }
}

/// Poll `cond` every 100 ms for at most `limit`.
async fn eventually(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fleet_feels_dns_network_and_spot_faults_and_recovers_after_each() {
    let dir = tempfile::tempdir().unwrap();
    let (fp, bp) = (free_port(), free_port());
    let cfg = config(fp, bp);
    let cancel = CancellationToken::new();
    let net = SandboxNet::new(cancel.child_token());
    let hook = net.start_for(&cfg).await.unwrap();
    let fleet = Arc::new(
        Fleet::start(
            &cfg,
            dir.path().join("fleet"),
            None,
            Some(hook),
            cancel.child_token(),
        )
        .await
        .unwrap(),
    );
    net.attach_fleet(&cfg, fleet.clone()).await.unwrap();
    let far = SystemTime::now() + Duration::from_secs(120);

    // Steady state: the frontend reaches the backend by name.
    let (status, body) = http_get(&format!("http://127.0.0.1:{fp}/")).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"served_by\":\"backend-"), "{body}");

    // DNS: the backend's name fails to resolve -> 503; fine again after revert.
    let spec = serde_saphyr::from_str("names: [\"backend.*\"]\naction: servfail\n").unwrap();
    let dns = DnsFault::new("dns-backend", spec, net.clone());
    let p = dns.prepare().await.unwrap();
    dns.inject(&p, far).await.unwrap();
    assert_eq!(front(fp).await, 503);
    dns_fault::revert(&net, &p.undo).unwrap();
    assert_eq!(front(fp).await, 200);

    // Network: the link into the backend swallows requests -> the frontend times out, 504.
    let spec =
        serde_saphyr::from_str("service: backend\nblackhole: true\ndirection: upstream\n").unwrap();
    let cut = NetworkFault::new("cut-backend", spec, net.clone());
    let p = cut.prepare().await.unwrap();
    cut.inject(&p, far).await.unwrap();
    assert_eq!(front(fp).await, 504);
    network_fault::revert(&net, &p.undo).unwrap();
    assert_eq!(front(fp).await, 200);

    // Spot: the backend's first instance is noticed, drains (unready, out of the proxy),
    // is terminated after the notice, and the supervisor brings a replacement up.
    let victim = fleet.service("backend").unwrap()[0].clone();
    let old_pid = victim.state().pid.unwrap();
    let spec = serde_saphyr::from_str(&format!(
        "instances: [{}]\nnotice: 2s\n",
        instance_name("backend", victim.instance)
    ))
    .unwrap();
    let spot = SpotFault::new("reclaim", spec, net.clone());
    let p = spot.prepare().await.unwrap();
    assert!(p.irreversible);
    spot.inject(&p, far).await.unwrap();
    let port = victim.port;
    assert!(
        eventually(Duration::from_secs(2), async || {
            http_get(&format!("http://127.0.0.1:{port}/readyz"))
                .await
                .map(|r| r.0)
                == Ok(503)
        })
        .await,
        "the noticed replica did not turn unready"
    );
    // Still served by the other replica while the victim drains.
    assert_eq!(front(fp).await, 200);
    assert!(
        eventually(Duration::from_secs(10), async || victim.state().pid
            != Some(old_pid))
        .await,
        "the noticed replica was not terminated"
    );
    assert!(
        eventually(Duration::from_secs(15), async || {
            victim.state().ready && victim.state().pid.is_some()
        })
        .await,
        "no replacement came up"
    );
    assert_eq!(front(fp).await, 200);

    fleet.stop().await;
    net.shutdown().await;
}
