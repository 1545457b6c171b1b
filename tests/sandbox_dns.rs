//! The sandbox's DNS server and the `dns` fault, answered by real DNS queries over loopback
//! UDP and TCP: raw queries to read the exact response code, and hickory-resolver (what the
//! demo service uses) to see what an application sees.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use gameday::targets::local::dns::{DnsAction, DnsHandle, DnsRule, DnsServer};
use gameday::targets::local::dns_fault::{self, DnsFault};
use gameday::targets::local::net::SandboxNet;
use gameday::targets::local::spec::DnsSpec;
use gameday::targets::Fault;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::xfer::Protocol;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Resolver, TokioResolver};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// What one raw query got: the response code and the A records, or no answer at all.
#[derive(Debug, PartialEq)]
enum Reply {
    Answer(ResponseCode, Vec<Ipv4Addr>),
    NoAnswer,
}

async fn query(server: SocketAddr, name: &str) -> Reply {
    let mut msg = Message::new();
    msg.set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&msg.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(700), sock.recv(&mut buf)).await {
        Err(_) => Reply::NoAnswer,
        Ok(r) => {
            let n = r.unwrap();
            let resp = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(resp.id(), msg.id());
            let ips = resp
                .answers()
                .iter()
                .filter_map(|r| match r.data() {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            Reply::Answer(resp.response_code(), ips)
        }
    }
}

fn resolver(server: SocketAddr, protocol: Protocol) -> TokioResolver {
    let mut config = ResolverConfig::new();
    config.add_name_server(NameServerConfig::new(server, protocol));
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_millis(500);
    opts.attempts = 1;
    opts.cache_size = 0;
    Resolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(opts)
        .build()
}

async fn server(cancel: &CancellationToken) -> DnsHandle {
    let dns = DnsServer::start("127.0.0.1:0".parse().unwrap(), cancel.clone())
        .await
        .unwrap();
    dns.set_service("backend", Ipv4Addr::LOCALHOST);
    dns.set_service("frontend", Ipv4Addr::LOCALHOST);
    dns
}

fn ok_local() -> Reply {
    Reply::Answer(ResponseCode::NoError, vec![Ipv4Addr::LOCALHOST])
}

#[tokio::test]
async fn fleet_names_resolve_over_udp_and_tcp_and_nothing_else_does() {
    let cancel = CancellationToken::new();
    let dns = server(&cancel).await;
    assert_eq!(
        query(dns.addr(), "backend.gameday.local.").await,
        ok_local()
    );
    assert_eq!(
        query(dns.addr(), "missing.gameday.local.").await,
        Reply::Answer(ResponseCode::NXDomain, vec![])
    );
    assert_eq!(
        query(dns.addr(), "example.com.").await,
        Reply::Answer(ResponseCode::Refused, vec![])
    );
    // The zone apex exists but has no address: NOERROR, no answer.
    assert_eq!(
        query(dns.addr(), "gameday.local.").await,
        Reply::Answer(ResponseCode::NoError, vec![])
    );
    for protocol in [Protocol::Udp, Protocol::Tcp] {
        let ips: Vec<IpAddr> = resolver(dns.addr(), protocol)
            .lookup_ip("backend.gameday.local.")
            .await
            .unwrap()
            .iter()
            .collect();
        assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)], "{protocol:?}");
    }
    cancel.cancel();
    dns.stopped().await;
}

#[tokio::test]
async fn each_action_answers_matching_names_only_and_stops_after_clear() {
    let cancel = CancellationToken::new();
    let dns = server(&cancel).await;
    let cases = [
        (
            DnsAction::Nxdomain,
            Reply::Answer(ResponseCode::NXDomain, vec![]),
        ),
        (
            DnsAction::Servfail,
            Reply::Answer(ResponseCode::ServFail, vec![]),
        ),
        (
            DnsAction::Refused,
            Reply::Answer(ResponseCode::Refused, vec![]),
        ),
        (DnsAction::Timeout, Reply::NoAnswer),
        (
            DnsAction::WrongAddress(Ipv4Addr::new(127, 0, 0, 2)),
            Reply::Answer(ResponseCode::NoError, vec![Ipv4Addr::new(127, 0, 0, 2)]),
        ),
    ];
    for (action, expected) in cases {
        let rule = DnsRule {
            names: vec!["backend.*".into()],
            action,
            probability: 1.0,
        };
        dns.set_rule("f", &rule).unwrap();
        assert_eq!(
            query(dns.addr(), "backend.gameday.local.").await,
            expected,
            "{action:?}"
        );
        assert_eq!(
            query(dns.addr(), "frontend.gameday.local.").await,
            ok_local(),
            "{action:?}"
        );
        assert!(dns.clear_rule("f"));
        assert_eq!(
            query(dns.addr(), "backend.gameday.local.").await,
            ok_local(),
            "{action:?}"
        );
    }
    cancel.cancel();
}

#[tokio::test]
async fn probability_hits_some_queries_and_not_others() {
    let cancel = CancellationToken::new();
    let dns = server(&cancel).await;
    dns.set_rule(
        "half",
        &DnsRule {
            names: vec!["*.gameday.local".into()],
            action: DnsAction::Servfail,
            probability: 0.5,
        },
    )
    .unwrap();
    let mut failed = 0;
    for _ in 0..60 {
        if query(dns.addr(), "backend.gameday.local.").await != ok_local() {
            failed += 1;
        }
    }
    // 60 draws at p = 0.5: all-or-nothing has probability 2^-59.
    assert!(failed > 0 && failed < 60, "{failed}/60 failed");
    cancel.cancel();
}

#[tokio::test]
async fn dns_fault_is_what_an_application_resolver_sees_and_reverts_from_the_record() {
    let cancel = CancellationToken::new();
    let sandbox = SandboxNet::new(cancel.clone());
    let dns = sandbox
        .start_dns("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    dns.set_service("backend", Ipv4Addr::LOCALHOST);
    let app = resolver(dns.addr(), Protocol::Udp);
    assert!(app.lookup_ip("backend.gameday.local.").await.is_ok());

    let spec: DnsSpec =
        serde_saphyr::from_str("names: [\"backend.*\"]\naction: nxdomain\n").unwrap();
    let fault = DnsFault::new("no-backend", spec, sandbox.clone());
    let prepared = fault.prepare().await.unwrap();
    fault
        .inject(&prepared, SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    let err = app.lookup_ip("backend.gameday.local.").await.unwrap_err();
    assert!(err.is_nx_domain(), "{err}");

    dns_fault::revert(&sandbox, &prepared.undo).unwrap();
    dns_fault::revert(&sandbox, &prepared.undo).unwrap();
    assert!(app.lookup_ip("backend.gameday.local.").await.is_ok());
    assert!(dns.active_rules().is_empty());

    // A timeout fault makes the application's lookup fail after its own timeout.
    let spec: DnsSpec =
        serde_saphyr::from_str("names: [\"backend.*\"]\naction: timeout\n").unwrap();
    let fault = DnsFault::new("slow-dns", spec, sandbox.clone());
    let prepared = fault.prepare().await.unwrap();
    fault
        .inject(&prepared, SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(app.lookup_ip("backend.gameday.local.").await.is_err());
    dns_fault::revert(&sandbox, &prepared.undo).unwrap();
    assert!(app.lookup_ip("backend.gameday.local.").await.is_ok());
    sandbox.shutdown().await;
}
