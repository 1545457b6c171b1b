//! The sandbox's L4 proxy and the `network` fault, over real loopback TCP: each toxic's
//! effect while active, and its absence after clear or revert.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use gameday::targets::local::net::SandboxNet;
use gameday::targets::local::network_fault::{self, NetworkFault};
use gameday::targets::local::proxy::{LinkFaults, Proxy, ProxyHandle, Toxics};
use gameday::targets::local::spec::NetworkSpec;
use gameday::targets::Fault;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::sandbox_support::{backends, echo_server, roundtrip};

const WAIT: Duration = Duration::from_secs(5);

async fn proxied_echo(cancel: &CancellationToken) -> ProxyHandle {
    let backend = echo_server("", cancel.clone()).await;
    Proxy::start(
        "127.0.0.1:0".parse().unwrap(),
        backends(vec![backend]),
        cancel.clone(),
    )
    .await
    .unwrap()
}

fn both(t: Toxics) -> LinkFaults {
    LinkFaults {
        upstream: t.clone(),
        downstream: t,
        percent: 100.0,
    }
}

fn upstream(t: Toxics) -> LinkFaults {
    LinkFaults {
        upstream: t,
        downstream: Toxics::default(),
        percent: 100.0,
    }
}

#[tokio::test]
async fn proxy_forwards_and_spreads_connections_over_replicas() {
    let cancel = CancellationToken::new();
    let a = echo_server("a:", cancel.clone()).await;
    let b = echo_server("b:", cancel.clone()).await;
    let proxy = Proxy::start(
        "127.0.0.1:0".parse().unwrap(),
        backends(vec![a, b]),
        cancel.clone(),
    )
    .await
    .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let answer = roundtrip(&mut s, b"hi", WAIT).await.unwrap();
        seen.insert(String::from_utf8(answer).unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["a:hi".to_string(), "b:hi".to_string()]
    );
    assert_eq!(proxy.stats().accepted, 4);
    cancel.cancel();
}

#[tokio::test]
async fn latency_is_added_to_an_open_connection_while_active_and_gone_after_clear() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    // One connection for the whole test: a pooled keep-alive connection must feel the fault.
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(roundtrip(&mut s, b"1", WAIT).await.unwrap(), b"1");

    let latency = Duration::from_millis(400);
    proxy.set_faults(
        "slow",
        upstream(Toxics {
            latency,
            ..Toxics::default()
        }),
    );
    let t = Instant::now();
    assert_eq!(roundtrip(&mut s, b"2", WAIT).await.unwrap(), b"2");
    assert!(
        t.elapsed() >= latency,
        "latency not applied: {:?}",
        t.elapsed()
    );

    assert!(proxy.clear("slow"));
    let t = Instant::now();
    assert_eq!(roundtrip(&mut s, b"3", WAIT).await.unwrap(), b"3");
    assert!(
        t.elapsed() < latency,
        "latency still applied: {:?}",
        t.elapsed()
    );
    cancel.cancel();
}

#[tokio::test]
async fn jitter_spreads_delays_around_the_latency() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    proxy.set_faults(
        "jittery",
        upstream(Toxics {
            latency: Duration::from_millis(100),
            jitter: Duration::from_millis(90),
            correlation: 0.25,
            ..Toxics::default()
        }),
    );
    let mut delays = Vec::new();
    for i in 0..8u8 {
        let t = Instant::now();
        roundtrip(&mut s, &[i], WAIT).await.unwrap();
        delays.push(t.elapsed());
    }
    // Every delay is at least latency - jitter, and they are not all the same.
    assert!(
        delays.iter().all(|d| *d >= Duration::from_millis(10)),
        "{delays:?}"
    );
    let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
    assert!(
        *max - *min >= Duration::from_millis(5),
        "no spread: {delays:?}"
    );
    cancel.cancel();
}

#[tokio::test]
async fn reset_sends_rst_and_new_connections_work_after_clear() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    proxy.set_faults(
        "rst",
        upstream(Toxics {
            reset: true,
            ..Toxics::default()
        }),
    );
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let err = roundtrip(&mut s, b"x", WAIT).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(proxy.stats().reset, 1);

    proxy.clear("rst");
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(roundtrip(&mut s, b"y", WAIT).await.unwrap(), b"y");
    cancel.cancel();
}

#[tokio::test]
async fn loss_drops_the_connection_with_a_clean_close() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    proxy.set_faults(
        "loss",
        upstream(Toxics {
            loss_percent: 100.0,
            ..Toxics::default()
        }),
    );
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    // End of stream, no answer: the connection was lost, not reset.
    assert_eq!(roundtrip(&mut s, b"x", WAIT).await.unwrap(), b"");
    assert_eq!(proxy.stats().lost, 1);

    proxy.clear("loss");
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(roundtrip(&mut s, b"y", WAIT).await.unwrap(), b"y");
    cancel.cancel();
}

#[tokio::test]
async fn blackhole_accepts_and_never_answers_until_cleared() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    proxy.set_faults(
        "hole",
        upstream(Toxics {
            blackhole: true,
            ..Toxics::default()
        }),
    );
    let err = roundtrip(&mut s, b"lost", Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(proxy.stats().blackholed_chunks >= 1);

    proxy.clear("hole");
    // The same connection carries data again; what the hole swallowed stays lost.
    assert_eq!(roundtrip(&mut s, b"back", WAIT).await.unwrap(), b"back");
    cancel.cancel();
}

#[tokio::test]
async fn bandwidth_caps_throughput() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let rate = 10_000u64; // bytes per second
    proxy.set_faults(
        "thin",
        LinkFaults {
            upstream: Toxics::default(),
            downstream: Toxics {
                bandwidth_bytes_per_sec: Some(rate),
                ..Toxics::default()
            },
            percent: 100.0,
        },
    );
    let payload = vec![7u8; 20_000];
    let t = Instant::now();
    s.write_all(&payload).await.unwrap();
    let mut got = vec![0u8; payload.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    // 20 kB at 10 kB/s: at least ~1.8 s (the first slice goes out at once).
    assert!(
        t.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        t.elapsed()
    );

    proxy.clear("thin");
    let t = Instant::now();
    s.write_all(&payload).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(1800),
        "{:?}",
        t.elapsed()
    );
    cancel.cancel();
}

#[tokio::test]
async fn slow_close_delays_the_close() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    let delay = Duration::from_millis(600);
    proxy.set_faults(
        "lingering",
        both(Toxics {
            slow_close: delay,
            ..Toxics::default()
        }),
    );
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(b"bye").await.unwrap();
    let t = Instant::now();
    s.shutdown().await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all, b"bye");
    // The client's close reached the server late, and the server's close came back late.
    assert!(t.elapsed() >= delay, "{:?}", t.elapsed());
    cancel.cancel();
}

#[tokio::test]
async fn percent_zero_affects_no_connection() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    let mut f = both(Toxics {
        reset: true,
        ..Toxics::default()
    });
    f.percent = 0.0;
    proxy.set_faults("none", f);
    for _ in 0..5 {
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"ok", WAIT).await.unwrap(), b"ok");
    }
    cancel.cancel();
}

#[tokio::test]
async fn no_healthy_replica_resets_the_client() {
    let cancel = CancellationToken::new();
    let proxy = Proxy::start(
        "127.0.0.1:0".parse().unwrap(),
        backends(vec![]),
        cancel.clone(),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
    assert!(
        matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            || matches!(r, Ok(0)),
        "{r:?}"
    );
    assert_eq!(proxy.stats().no_backend, 1);
    cancel.cancel();
}

#[tokio::test]
async fn network_fault_goes_through_the_ledger_record_and_reverts_from_it() {
    let cancel = CancellationToken::new();
    let sandbox = SandboxNet::new(cancel.clone());
    let backend = echo_server("", cancel.clone()).await;
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let proxy = sandbox
        .start_service_proxy("backend", listen, backends(vec![backend]))
        .await
        .unwrap();
    let spec: NetworkSpec =
        serde_saphyr::from_str("service: backend\nblackhole: true\ndirection: upstream\n").unwrap();
    let fault = NetworkFault::new("cut-backend", spec, sandbox.clone());
    let prepared = fault.prepare().await.unwrap();
    assert!(!prepared.irreversible);
    assert_eq!(prepared.undo["service"], "backend");
    // The record survives the ledger's JSON round trip.
    let undo: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&prepared.undo).unwrap()).unwrap();

    fault
        .inject(&prepared, SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let err = roundtrip(&mut s, b"x", Duration::from_millis(400))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

    network_fault::revert(&sandbox, &undo).unwrap();
    network_fault::revert(&sandbox, &undo).unwrap(); // idempotent
    assert!(proxy.faults().is_empty());
    assert_eq!(roundtrip(&mut s, b"y", WAIT).await.unwrap(), b"y");

    // `gameday recover` in a fresh process: the runner that held the proxy is gone.
    let mut foreign = undo.clone();
    foreign["runner_pid"] = serde_json::json!(1);
    network_fault::revert(&sandbox, &foreign).unwrap();
    sandbox.shutdown().await;
}

#[tokio::test]
async fn network_fault_on_an_unknown_service_names_the_known_ones() {
    let cancel = CancellationToken::new();
    let sandbox = SandboxNet::new(cancel.clone());
    let backend = echo_server("", cancel.clone()).await;
    sandbox
        .start_service_proxy(
            "backend",
            "127.0.0.1:0".parse().unwrap(),
            backends(vec![backend]),
        )
        .await
        .unwrap();
    let spec: NetworkSpec = serde_saphyr::from_str("service: bakend\nreset: true\n").unwrap();
    let err = NetworkFault::new("f", spec, sandbox.clone())
        .resolve()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bakend") && msg.contains("backend"), "{msg}");
    sandbox.shutdown().await;
}

/// `reset` and `loss` act on connections that already exist (at their next chunk), as
/// toxiproxy's toxics do: a keep-alive connection opened before the fault does not escape it.
#[tokio::test]
async fn reset_and_loss_hit_connections_opened_before_the_fault() {
    let cancel = CancellationToken::new();
    let proxy = proxied_echo(&cancel).await;
    for (name, toxics) in [
        (
            "rst",
            Toxics {
                reset: true,
                ..Toxics::default()
            },
        ),
        (
            "loss",
            Toxics {
                loss_percent: 100.0,
                ..Toxics::default()
            },
        ),
    ] {
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"before", WAIT).await.unwrap(), b"before");
        proxy.set_faults(name, upstream(toxics));
        match roundtrip(&mut s, b"during", WAIT).await {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{name}: {e}"),
            Ok(b) => assert_eq!(b, b"", "{name}: the connection is lost, nothing forwarded"),
        }
        proxy.clear(name);
    }
    let st = proxy.stats();
    assert_eq!((st.reset, st.lost), (1, 1), "{st:?}");
    cancel.cancel();
}
