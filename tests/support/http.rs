//! Real HTTP servers the tests control, each on 127.0.0.1 and on its own thread (so that a
//! test can starve or block its own runtime without slowing the target): a hyper server
//! (HTTP/1.1 and h2c, optionally TLS) that can be told to stall or to answer a given status,
//! and raw TCP listeners that reset, never answer, or never accept.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs `f` on a fresh current-thread runtime in a new thread until the returned guard drops.
fn on_thread<F, Fut>(f: F) -> (SocketAddr, CancellationToken)
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            tokio::select! {
                _ = f(l, c.clone()) => {}
                _ = c.cancelled() => {}
            }
        });
    });
    (rx.recv().unwrap(), cancel)
}

struct State {
    t0: Instant,
    /// Requests arriving before this (ns since t0) wait until then.
    stall_until_ns: AtomicU64,
    /// Every request takes this long (µs): a target of bounded capacity.
    delay_us: AtomicU64,
    status: AtomicU16,
    requests: AtomicU64,
}

/// A hyper server (HTTP/1.1 + h2c, or TLS with ALPN) that answers `status` with a small body.
pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    cancel: CancellationToken,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn handle(
    state: Arc<State>,
    _req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let until = state.stall_until_ns.load(Ordering::Acquire);
    let now = state.t0.elapsed().as_nanos() as u64;
    if now < until {
        tokio::time::sleep(Duration::from_nanos(until - now)).await;
    }
    let delay = state.delay_us.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_micros(delay)).await;
    }
    let status = state.status.load(Ordering::Relaxed);
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(
            b"hello from the test server\n",
        )))
        .unwrap())
}

impl TestServer {
    /// Plain HTTP (HTTP/1.1 and h2c prior knowledge).
    pub fn start() -> TestServer {
        Self::start_inner(None)
    }

    /// TLS with the given server config (ALPN h2 and http/1.1).
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> TestServer {
        Self::start_inner(Some(config))
    }

    fn start_inner(tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
        let state = Arc::new(State {
            t0: Instant::now(),
            stall_until_ns: AtomicU64::new(0),
            delay_us: AtomicU64::new(0),
            status: AtomicU16::new(200),
            requests: AtomicU64::new(0),
        });
        let st = state.clone();
        let (addr, cancel) = on_thread(move |l, _c| async move {
            let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
            loop {
                let Ok((stream, _)) = l.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |r| handle(st.clone(), r));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(a) => {
                            if let Ok(s) = a.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        TestServer {
            addr,
            state,
            cancel,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    /// Every request that arrives in the next `d` waits until its end: the target stalls.
    pub fn stall_for(&self, d: Duration) {
        let until = self.state.t0.elapsed() + d;
        self.state
            .stall_until_ns
            .store(until.as_nanos() as u64, Ordering::Release);
    }

    /// Every request from now on takes `d` to answer.
    pub fn delay_each(&self, d: Duration) {
        self.state
            .delay_us
            .store(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Answer this status from now on.
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::Relaxed);
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

/// A raw TCP listener running `behaviour` on each accepted connection.
pub struct RawServer {
    pub addr: SocketAddr,
    cancel: CancellationToken,
    answered: Arc<AtomicU64>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl RawServer {
    /// Reads the request, then closes with SO_LINGER 0: the client sees a TCP reset.
    pub fn resetting() -> RawServer {
        let (addr, cancel) = on_thread(|l, _| async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    // Linger 0 never blocks on drop (the deprecation is about non-zero values):
                    // it makes the close a TCP RST.
                    #[allow(deprecated)]
                    let _ = s.set_linger(Some(Duration::ZERO));
                    drop(s);
                });
            }
        });
        RawServer {
            addr,
            cancel,
            answered: Arc::default(),
        }
    }

    /// Accepts and reads, never answers: every request times out.
    pub fn silent() -> RawServer {
        let (addr, cancel) = on_thread(|l, c| async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                let c = c.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        tokio::select! {
                            r = s.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
                            _ = c.cancelled() => return,
                        }
                    }
                });
            }
        });
        RawServer {
            addr,
            cancel,
            answered: Arc::default(),
        }
    }

    /// Answers the first request on each connection as keep-alive (no `Connection: close`),
    /// then reads the next one and closes without answering: a request that reached the
    /// server and was never answered, every time.
    pub fn one_answer_per_connection() -> RawServer {
        Self::one_answer_then(true)
    }

    /// Answers the first request on each connection as keep-alive (no `Connection: close`)
    /// and closes the connection at once: every reused connection is stale before the next
    /// request is tried on it.
    pub fn closes_after_every_answer() -> RawServer {
        Self::one_answer_then(false)
    }

    fn one_answer_then(read_next: bool) -> RawServer {
        let answered = Arc::new(AtomicU64::new(0));
        let count = answered.clone();
        let (addr, cancel) = on_thread(move |l, _| async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // The first request, headers and body.
                    loop {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let body: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + body {
                                break;
                            }
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(answer).await.is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    if read_next {
                        // The next request on this connection: read and dropped unanswered.
                        let _ = s.read(&mut chunk).await;
                    }
                });
            }
        });
        RawServer {
            addr,
            cancel,
            answered,
        }
    }

    /// Requests answered (servers that count).
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A listener with a backlog of 0 that never accepts, its accept queue filled: Linux then
/// drops further SYNs, so a connect hangs until the client's connect timeout. Keep the returned
/// value alive for the test.
pub struct FullBacklog {
    pub addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _fillers: Vec<tokio::net::TcpStream>,
}

impl FullBacklog {
    pub async fn new() -> FullBacklog {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = sock.local_addr().unwrap();
        let listener = sock.listen(0).unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                fillers.push(s);
            }
        }
        FullBacklog {
            addr,
            _listener: listener,
            _fillers: fillers,
        }
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: the server config and the CA PEM a
/// client must trust.
pub fn self_signed() -> (Arc<rustls::ServerConfig>, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_der = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (Arc::new(config), ck.cert.pem())
}
