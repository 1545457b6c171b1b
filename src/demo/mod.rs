//! The demo service shipped inside the binary (`gameday demo-service frontend|backend`), so
//! that the demo gameday needs nothing but gameday itself.
//!
//! It is a small but honest service: the frontend answers `GET /` by calling the backend by
//! host name (`backend.gameday.local`), resolved through the sandbox's DNS server
//! (`GAMEDAY_DNS`) with hickory-resolver, so DNS faults reach it; both speak HTTP/1 through
//! the sandbox's proxies, so network faults reach them; both have liveness (`/healthz`) and
//! readiness (`/readyz`), shut down gracefully on SIGTERM (finish in-flight requests), and
//! watch their instance's spot metadata (`GAMEDAY_METADATA_URL`): on a notice they turn
//! unready, so the proxy stops sending them new connections, and drain before termination.
//!
//! The frontend maps failures to the status a user would see: 503 when the backend's name
//! does not resolve, 502 when the backend cannot be reached or fails, 504 when it does not
//! answer in time. The load's report shows these per phase.

mod server;
mod spot_watch;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

/// Which half of the demo to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Answers `GET /` by calling the backend's `/work` by host name.
    Frontend,
    /// Answers `GET /work` with a small JSON after a few milliseconds of work.
    Backend,
}

/// `gameday demo-service`: the built-in demo service.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Which half to run.
    #[arg(value_enum)]
    pub role: Role,
    /// Port to listen on (127.0.0.1). The fleet gives each replica its own.
    #[arg(long, env = "PORT")]
    pub port: u16,
    /// The backend as `host:port` (frontend only), resolved through `--dns`.
    #[arg(
        long,
        env = "GAMEDAY_DEMO_BACKEND",
        default_value = "backend.gameday.local:8081"
    )]
    pub backend: String,
    /// DNS server to resolve the backend with (`127.0.0.1:PORT`, given by the sandbox). Without
    /// it the system resolver is used.
    #[arg(long, env = "GAMEDAY_DNS")]
    pub dns: Option<SocketAddr>,
    /// Base URL of the instance metadata endpoint to watch for spot notices.
    #[arg(long, env = "GAMEDAY_METADATA_URL")]
    pub metadata_url: Option<String>,
    /// How long the backend works on each request (`5ms`).
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    pub work: Duration,
    /// How long the frontend waits for the backend before answering 504.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub backend_timeout: Duration,
    /// How long the frontend waits for a DNS answer before answering 503.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub dns_timeout: Duration,
    /// How often to poll the metadata endpoint for a spot notice.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub spot_poll: Duration,
    /// Longest wait for in-flight requests on shutdown.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

/// State every request handler sees.
struct App {
    role: Role,
    args: DemoArgs,
    draining: AtomicBool,
    identity: String,
    backend: Option<BackendClient>,
}

type Body = Full<Bytes>;

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn json_error(status: StatusCode, kind: &str, detail: impl std::fmt::Display) -> Response<Body> {
    respond(
        status,
        serde_json::json!({ "error": kind, "detail": detail.to_string() }).to_string(),
    )
}

/// Run the demo service until SIGTERM or SIGINT, then drain and return.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let identity = format!(
        "{}-{}",
        std::env::var("GAMEDAY_SERVICE")
            .unwrap_or_else(|_| format!("{:?}", args.role).to_lowercase()),
        std::env::var("GAMEDAY_REPLICA").unwrap_or_else(|_| "0".into())
    );
    let backend = match args.role {
        Role::Frontend => Some(BackendClient::new(&args)?),
        Role::Backend => None,
    };
    let app = Arc::new(App {
        role: args.role,
        args: args.clone(),
        draining: AtomicBool::new(false),
        identity,
        backend,
    });
    let listen = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("demo service cannot listen on {listen}"))?;
    let cancel = CancellationToken::new();
    if let Some(url) = &args.metadata_url {
        let app = app.clone();
        let on_notice = move |notice: &str| {
            app.draining.store(true, Ordering::SeqCst);
            tracing::warn!(%notice, "spot interruption notice: now unready, draining");
        };
        tokio::spawn(spot_watch::watch(
            url.clone(),
            args.spot_poll,
            on_notice,
            cancel.clone(),
        ));
    }
    tokio::spawn(shutdown_on_signal(app.clone(), cancel.clone()));
    tracing::info!(role = ?args.role, %listen, "demo service ready");
    let handler = {
        let app = app.clone();
        move |req: Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&app, req).await) }
        }
    };
    server::serve(listener, handler, cancel, args.drain_timeout).await;
    tracing::info!("demo service stopped");
    Ok(())
}

async fn shutdown_on_signal(app: Arc<App>, cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    app.draining.store(true, Ordering::SeqCst);
    tracing::info!("signal received: finishing in-flight requests");
    cancel.cancel();
}

async fn handle(app: &App, req: Request<hyper::body::Incoming>) -> Response<Body> {
    match (app.role, req.uri().path()) {
        (_, "/healthz") => respond(StatusCode::OK, r#"{"status":"ok"}"#),
        (_, "/readyz") => {
            if app.draining.load(Ordering::SeqCst) {
                respond(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
            } else {
                respond(StatusCode::OK, r#"{"status":"ready"}"#)
            }
        }
        (Role::Backend, "/work" | "/") => {
            tokio::time::sleep(app.args.work).await;
            respond(
                StatusCode::OK,
                serde_json::json!({
                    "served_by": app.identity,
                    "instance": std::env::var("GAMEDAY_INSTANCE").ok(),
                    "work_ms": app.args.work.as_millis() as u64,
                })
                .to_string(),
            )
        }
        (Role::Frontend, "/") => match &app.backend {
            Some(backend) => backend.call(&app.identity).await,
            None => json_error(StatusCode::INTERNAL_SERVER_ERROR, "config", "no backend"),
        },
        _ => json_error(StatusCode::NOT_FOUND, "not_found", req.uri().path()),
    }
}

/// How the frontend reaches the backend: its own resolver (through the sandbox's DNS), and a
/// pooled HTTP/1 client.
struct BackendClient {
    host: String,
    port: u16,
    resolver: Option<hickory_resolver::TokioResolver>,
    http: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
    dns_timeout: Duration,
}

/// Why a call to the backend failed, mapped to the status the frontend answers.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("cannot resolve {host}: {reason}")]
    Dns { host: String, reason: String },
    #[error("backend at {addr} failed: {reason}")]
    Backend { addr: SocketAddr, reason: String },
    #[error("backend at {addr} did not answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

impl BackendClient {
    fn new(args: &DemoArgs) -> anyhow::Result<Self> {
        let (host, port) = args
            .backend
            .rsplit_once(':')
            .with_context(|| format!("--backend {:?} must be host:port", args.backend))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("--backend {:?}: bad port", args.backend))?;
        let resolver = args.dns.map(|server| {
            use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
            let mut config = ResolverConfig::new();
            config.add_name_server(NameServerConfig::new(
                server,
                hickory_proto::xfer::Protocol::Udp,
            ));
            let mut opts = ResolverOpts::default();
            opts.timeout = args.dns_timeout;
            opts.attempts = 1;
            // No cache: every request asks, so a DNS fault (and its end) shows at once. The
            // server's TTL is 1 s anyway; a real service would cache that long.
            opts.cache_size = 0;
            opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4Only;
            hickory_resolver::Resolver::builder_with_config(
                config,
                hickory_resolver::name_server::TokioConnectionProvider::default(),
            )
            .with_options(opts)
            .build()
        });
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(args.backend_timeout));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(BackendClient {
            host: host.to_string(),
            port,
            resolver,
            http,
            timeout: args.backend_timeout,
            dns_timeout: args.dns_timeout,
        })
    }

    async fn resolve(&self) -> Result<IpAddr, CallError> {
        let dns_err = |reason: String| CallError::Dns {
            host: self.host.clone(),
            reason,
        };
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(ip);
        }
        match &self.resolver {
            Some(r) => {
                let fqdn = format!("{}.", self.host.trim_end_matches('.'));
                // The resolver has its own timeout; this bound is a backstop.
                let lookup = tokio::time::timeout(self.dns_timeout * 2, r.lookup_ip(fqdn))
                    .await
                    .map_err(|_| dns_err("timed out".into()))?
                    .map_err(|e| dns_err(e.to_string()))?;
                lookup
                    .iter()
                    .next()
                    .ok_or_else(|| dns_err("no address".into()))
            }
            None => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| dns_err(e.to_string()))?
                .next()
                .map(|a| a.ip())
                .ok_or_else(|| dns_err("no address".into())),
        }
    }

    async fn fetch(&self) -> Result<Bytes, CallError> {
        let ip = self.resolve().await?;
        let addr = SocketAddr::new(ip, self.port);
        let uri: hyper::Uri =
            format!("http://{addr}/work")
                .parse()
                .map_err(|e| CallError::Backend {
                    addr,
                    reason: format!("{e}"),
                })?;
        let req = Request::get(uri)
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .body(Empty::new())
            .map_err(|e| CallError::Backend {
                addr,
                reason: e.to_string(),
            })?;
        let call = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| CallError::Backend {
                    addr,
                    reason: format!("{e:#}"),
                })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::Backend {
                    addr,
                    reason: e.to_string(),
                })?
                .to_bytes();
            if !status.is_success() {
                return Err(CallError::Backend {
                    addr,
                    reason: format!("status {status}"),
                });
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| CallError::Timeout {
                addr,
                timeout: self.timeout,
            })?
    }

    async fn call(&self, identity: &str) -> Response<Body> {
        match self.fetch().await {
            Ok(body) => {
                let backend: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                respond(
                    StatusCode::OK,
                    serde_json::json!({ "frontend": identity, "backend": backend }).to_string(),
                )
            }
            Err(e) => {
                let (status, kind) = match &e {
                    CallError::Dns { .. } => (StatusCode::SERVICE_UNAVAILABLE, "dns"),
                    CallError::Backend { .. } => (StatusCode::BAD_GATEWAY, "backend"),
                    CallError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
                };
                tracing::debug!(error = %e, "backend call failed");
                json_error(status, kind, e)
            }
        }
    }
}
