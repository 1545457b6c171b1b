//! Gameday's own DNS server: authoritative for the fleet zone (`<service>.gameday.local`),
//! and the place where `dns` faults happen.
//!
//! Fleet processes get `GAMEDAY_DNS=127.0.0.1:PORT` and resolve their peers through it, so a
//! rule set here (NXDOMAIN, SERVFAIL, REFUSED, timeout, wrong address; for name patterns,
//! with a probability) is what a real resolver in a real process sees. Names that no rule
//! matches resolve normally. The server recurses for nobody: names outside the zone get
//! REFUSED, so a sandbox process can never reach a real name through it.
//!
//! Built on `hickory-server`'s `ServerFuture` with our own `RequestHandler`, rather than its
//! `Catalog` of authorities, because faults must be decided per query before any lookup.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

/// The zone the sandbox serves: `<service>.gameday.local`.
pub const ZONE: &str = "gameday.local";

/// TTL of the answers, in seconds. Short, so that resolvers that cache still see a fault (and
/// its revert) within a second.
const TTL: u32 = 1;

/// How long a TCP DNS connection may stay idle before the server drops it.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from the DNS server, carrying the address or pattern they are about.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The server could not bind its UDP or TCP socket.
    #[error("dns server cannot listen on {addr}: {source} (is another process using that port?)")]
    Bind {
        /// The address tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A name pattern of a rule is not a valid glob.
    #[error("dns fault name pattern {pattern:?} is invalid: {source}")]
    Pattern {
        /// The pattern as written in the scenario.
        pattern: String,
        /// What globset found wrong.
        source: globset::Error,
    },
}

/// What a matching query gets instead of its normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "address")]
pub enum DnsAction {
    /// The name does not exist (rcode 3).
    Nxdomain,
    /// The server failed (rcode 2).
    Servfail,
    /// The server refuses to answer (rcode 5).
    Refused,
    /// No answer at all: the client waits until its own timeout.
    Timeout,
    /// A valid answer with this (wrong) address.
    WrongAddress(Ipv4Addr),
}

/// One fault's rule: which names, what happens, how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsRule {
    /// Glob patterns (`backend.*`, `*.gameday.local`), matched case-insensitively against the
    /// queried name without its trailing dot.
    pub names: Vec<String>,
    /// What matching queries get.
    pub action: DnsAction,
    /// 0..=1: the chance that a matching query is hit.
    pub probability: f64,
}

/// A rule with its patterns compiled, as the query path uses it.
struct CompiledRule {
    set: GlobSet,
    action: DnsAction,
    probability: f64,
}

impl CompiledRule {
    fn compile(rule: &DnsRule) -> Result<Self, DnsError> {
        let mut builder = GlobSetBuilder::new();
        for pattern in &rule.names {
            let glob = globset::GlobBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .map_err(|source| DnsError::Pattern {
                    pattern: pattern.clone(),
                    source,
                })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|source| DnsError::Pattern {
            pattern: rule.names.join(", "),
            source,
        })?;
        Ok(CompiledRule {
            set,
            action: rule.action,
            probability: rule.probability,
        })
    }
}

/// Check that a pattern is a valid glob, for scenario validation (no server needed).
pub fn check_pattern(pattern: &str) -> Result<(), DnsError> {
    Glob::new(pattern)
        .map(|_| ())
        .map_err(|source| DnsError::Pattern {
            pattern: pattern.to_string(),
            source,
        })
}

/// Counters the server keeps, for tests and the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DnsStats {
    /// Queries received.
    pub queries: u64,
    /// Queries a fault rule answered (or left unanswered).
    pub faulted: u64,
}

struct State {
    /// Fleet names (lowercase, no trailing dot) to their service address.
    records: RwLock<BTreeMap<String, Ipv4Addr>>,
    /// Active rules by fault id, in id order.
    rules: RwLock<BTreeMap<String, Arc<CompiledRule>>>,
    queries: AtomicU64,
    faulted: AtomicU64,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// What the handler decided for one query.
#[derive(Debug, PartialEq)]
enum Answer {
    Records(Vec<Ipv4Addr>),
    Code(ResponseCode),
    Silence,
}

impl State {
    fn decide(&self, name: &str, qtype: RecordType) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let rule_hit = {
            let rules = read(&self.rules);
            let mut rng = rand::thread_rng();
            rules
                .values()
                .find(|r| r.set.is_match(&name) && rng.gen_bool(r.probability.clamp(0.0, 1.0)))
                .map(|r| r.action)
        };
        if let Some(action) = rule_hit {
            self.faulted.fetch_add(1, Ordering::Relaxed);
            return match action {
                DnsAction::Nxdomain => Answer::Code(ResponseCode::NXDomain),
                DnsAction::Servfail => Answer::Code(ResponseCode::ServFail),
                DnsAction::Refused => Answer::Code(ResponseCode::Refused),
                DnsAction::Timeout => Answer::Silence,
                DnsAction::WrongAddress(ip) if qtype == RecordType::A => Answer::Records(vec![ip]),
                DnsAction::WrongAddress(_) => Answer::Records(Vec::new()),
            };
        }
        let in_zone = name == ZONE || name.ends_with(&format!(".{ZONE}"));
        if !in_zone {
            return Answer::Code(ResponseCode::Refused);
        }
        match read(&self.records).get(&name) {
            Some(ip) if qtype == RecordType::A => Answer::Records(vec![*ip]),
            // The name exists but has no record of that type: NOERROR, no answer (NODATA).
            Some(_) => Answer::Records(Vec::new()),
            None if name == ZONE => Answer::Records(Vec::new()),
            None => Answer::Code(ResponseCode::NXDomain),
        }
    }
}

struct Handler {
    state: Arc<State>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.state.queries.fetch_add(1, Ordering::Relaxed);
        let builder = MessageResponseBuilder::from_message_request(request);
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            let msg = builder.error_msg(request.header(), ResponseCode::NotImp);
            return send(&mut response_handle, msg).await;
        }
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(request.header(), ResponseCode::FormErr);
            return send(&mut response_handle, msg).await;
        };
        let qname: &LowerName = info.query.name();
        let answer = self
            .state
            .decide(&qname.to_string(), info.query.query_type());
        match answer {
            Answer::Silence => {
                let mut header = Header::response_from_request(request.header());
                header.set_response_code(ResponseCode::ServFail);
                header.into()
            }
            Answer::Code(code) => {
                let msg = builder.error_msg(request.header(), code);
                send(&mut response_handle, msg).await
            }
            Answer::Records(ips) => {
                let name: Name = info.query.original().name().clone();
                let records: Vec<Record> = ips
                    .into_iter()
                    .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(ip))))
                    .collect();
                let mut header = Header::response_from_request(request.header());
                header.set_authoritative(true);
                let msg = builder.build(
                    header,
                    records.iter(),
                    std::iter::empty(),
                    std::iter::empty(),
                    std::iter::empty(),
                );
                send(&mut response_handle, msg).await
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    msg: hickory_server::authority::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    match handle.send_response(msg).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "dns response could not be sent");
            let mut header = Header::new();
            header.set_response_code(ResponseCode::ServFail);
            header.into()
        }
    }
}

/// The DNS server component. See the module documentation.
pub struct DnsServer;

impl DnsServer {
    /// Serve UDP and TCP on `listen` (same port for both; port 0 picks a free one) until
    /// `cancel` fires.
    pub async fn start(
        listen: SocketAddr,
        cancel: CancellationToken,
    ) -> Result<DnsHandle, DnsError> {
        let (udp, tcp) = bind_pair(listen).await?;
        let addr = udp.local_addr().map_err(|source| DnsError::Bind {
            addr: listen,
            source,
        })?;
        let state = Arc::new(State {
            records: RwLock::new(BTreeMap::new()),
            rules: RwLock::new(BTreeMap::new()),
            queries: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
        });
        let mut server = ServerFuture::new(Handler {
            state: state.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT);
        let task = tokio::spawn(async move {
            cancel.cancelled().await;
            if let Err(error) = server.shutdown_gracefully().await {
                tracing::debug!(%error, "dns server shut down with an error");
            }
        });
        tracing::debug!(%addr, "dns server listening");
        Ok(DnsHandle {
            addr,
            state,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        })
    }
}

/// Bind UDP and TCP on the same port. With port 0 the UDP port is picked first and TCP may
/// find it taken by someone else: try a few times.
async fn bind_pair(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let mut last_error = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| DnsError::Bind {
                addr: listen,
                source,
            })?;
        let addr = udp.local_addr().map_err(|source| DnsError::Bind {
            addr: listen,
            source,
        })?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) if listen.port() == 0 => last_error = Some(source),
            Err(source) => return Err(DnsError::Bind { addr, source }),
        }
    }
    Err(DnsError::Bind {
        addr: listen,
        source: last_error.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
    })
}

/// Controls one running DNS server. Cheap to clone.
#[derive(Clone)]
pub struct DnsHandle {
    addr: SocketAddr,
    state: Arc<State>,
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for DnsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DnsHandle {
    /// The UDP and TCP address (what fleet processes get as `GAMEDAY_DNS`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Make `<service>.gameday.local` resolve to `ip`.
    pub fn set_service(&self, service: &str, ip: Ipv4Addr) {
        write(&self.state.records).insert(service_name(service), ip);
    }

    /// Make `<service>.gameday.local` stop resolving (NXDOMAIN).
    pub fn remove_service(&self, service: &str) {
        write(&self.state.records).remove(&service_name(service));
    }

    /// Activate (or replace) the rule of fault `id`.
    pub fn set_rule(&self, id: &str, rule: &DnsRule) -> Result<(), DnsError> {
        let compiled = Arc::new(CompiledRule::compile(rule)?);
        write(&self.state.rules).insert(id.to_string(), compiled);
        Ok(())
    }

    /// Remove the rule of fault `id`. Idempotent.
    pub fn clear_rule(&self, id: &str) -> bool {
        write(&self.state.rules).remove(id).is_some()
    }

    /// The fault ids with an active rule.
    pub fn active_rules(&self) -> Vec<String> {
        read(&self.state.rules).keys().cloned().collect()
    }

    /// The counters so far.
    pub fn stats(&self) -> DnsStats {
        DnsStats {
            queries: self.state.queries.load(Ordering::Relaxed),
            faulted: self.state.faulted.load(Ordering::Relaxed),
        }
    }

    /// Wait for the server to stop (after its cancellation token fired).
    pub async fn stopped(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The fully qualified name (no trailing dot) of a fleet service.
pub fn service_name(service: &str) -> String {
    format!("{}.{ZONE}", service.to_ascii_lowercase())
}

/// Is `ip` an address the sandbox may hand out? Only loopback: a wrong answer must never send
/// a fleet process's traffic off this machine.
pub fn is_sandbox_address(ip: IpAddr) -> bool {
    ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            records: RwLock::new(BTreeMap::new()),
            rules: RwLock::new(BTreeMap::new()),
            queries: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
        }
    }

    #[test]
    fn names_outside_the_zone_are_refused_and_unknown_ones_do_not_exist() {
        let s = state();
        s.records
            .write()
            .unwrap()
            .insert("backend.gameday.local".into(), Ipv4Addr::LOCALHOST);
        assert_eq!(
            s.decide("example.com.", RecordType::A),
            Answer::Code(ResponseCode::Refused)
        );
        assert_eq!(
            s.decide("nope.gameday.local.", RecordType::A),
            Answer::Code(ResponseCode::NXDomain)
        );
        assert_eq!(
            s.decide("Backend.Gameday.Local.", RecordType::A),
            Answer::Records(vec![Ipv4Addr::LOCALHOST])
        );
        assert_eq!(
            s.decide("backend.gameday.local.", RecordType::AAAA),
            Answer::Records(vec![])
        );
    }

    #[test]
    fn a_rule_hits_only_the_names_its_patterns_match() {
        let s = state();
        let rule = DnsRule {
            names: vec!["backend.*".into()],
            action: DnsAction::Servfail,
            probability: 1.0,
        };
        s.rules
            .write()
            .unwrap()
            .insert("f".into(), Arc::new(CompiledRule::compile(&rule).unwrap()));
        assert_eq!(
            s.decide("backend.gameday.local.", RecordType::A),
            Answer::Code(ResponseCode::ServFail)
        );
        assert_eq!(
            s.decide("frontend.gameday.local.", RecordType::A),
            Answer::Code(ResponseCode::NXDomain)
        );
    }

    #[test]
    fn a_bad_pattern_is_reported_with_the_pattern() {
        let err = check_pattern("backend.[").unwrap_err();
        assert!(err.to_string().contains("backend.["), "{err}");
    }
}
