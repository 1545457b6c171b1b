//! The scenario's `load:` section ([`LoadSpec`]) and its per-phase override ([`PhaseLoad`]),
//! as written in YAML, plus [`LoadSpec::resolve`] that turns it into a checked [`Plan`] before
//! any socket opens (validate everything, then act).
//!
//! Durations are the scenario's own [`Dur`]: one parser, one cap, and a bad one is reported
//! by the YAML reader with its line and column like every other duration in a scenario.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

use super::error::LoadError;
use crate::duration::Dur;

/// How a gameday loads its target. One of `url` (a single GET) or `endpoints` (several weighted
/// requests). With `rate` the load is an open model: requests arrive at that rate whatever the
/// target does, as users would. Without it the load is a closed model: `connections` workers
/// each send the next request as soon as the previous one answers.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct LoadSpec {
    /// Shorthand for one endpoint: `GET` this URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Several endpoints, each picked at random in proportion to its `weight`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointSpec>,
    /// Requests per second (open model, constant arrival rate). Absent: closed model, as fast
    /// as the connections allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Keep-alive connections opened up front (closed model: exactly this many requests in
    /// flight). In the open model more are opened when every one is busy, up to
    /// `max_connections`, so that users arriving during a hang each wait on their own
    /// connection, as real users would, instead of queueing in the generator behind the hung
    /// ones and being sent after the hang is over.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Open model: the most connections the generator opens (default the larger of
    /// `connections` and 1024). Past it a request waits for a free connection (counted `late`,
    /// its wait in the latency) and is `dropped` at its deadline: then the generator, not the
    /// target, could not send. Set it equal to `connections` for a fixed pool, as in wrk2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Request timeout: no complete response within this is a `request_timeout` error.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// TCP connect (and TLS handshake) timeout. Default: the request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Speak HTTP/2 (h2c prior knowledge on `http://`, ALPN `h2` on `https://`).
    #[serde(default)]
    pub http2: bool,
    /// Trust threshold: a one-second window whose generator lag p99 (or runtime heartbeat p99)
    /// is above this is marked untrusted, because the generator, not the target, was late.
    /// Default `10ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<Dur>,
    /// Do not verify TLS certificates (self-signed targets). The handshake still happens.
    #[serde(default)]
    pub insecure: bool,
    /// PEM file of CA certificates to trust for `https://` instead of the built-in web roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Threads the generator runs on, each with its own single-threaded runtime and its share
    /// of the connections. Default: one per CPU. 0: on the caller's tokio runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

/// One request the load sends, picked in proportion to its weight.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct EndpointSpec {
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// HTTP method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers (name: value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Relative weight; an endpoint of weight 3 is sent three times as often as one of weight 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// A phase's change to the load, applied by the engine at the phase start through
/// [`super::LoadHandle::set_rate`].
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PhaseLoad {
    /// New rate in requests per second (open model only). Absent: keep the current rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Reach the new rate linearly over this duration (`30s`) instead of at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Dur>,
}

impl PhaseLoad {
    /// The ramp as a duration (zero when absent).
    pub fn ramp_duration(&self) -> Duration {
        self.ramp.map(Dur::get).unwrap_or_default()
    }
}

/// Default cap of the open model's connection pool: a total hang at 100 req/s with a 10 s
/// timeout needs 1000 connections for every user to wait on its own; far below the usual
/// file-descriptor limits.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

fn default_connections() -> usize {
    64
}
fn default_timeout() -> Dur {
    Dur::from_secs(10)
}
fn default_method() -> String {
    "GET".to_owned()
}
fn default_weight() -> u32 {
    1
}

/// The default trust threshold for generator lag.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_millis(10);

/// Parses a rate like `2000`, `5k`, `1.5k`, `20k/s`, `300/s` into requests per second.
pub fn parse_rate(value: &str) -> Result<f64, String> {
    let s = value.trim().trim_end_matches("/s").trim();
    let (num, mult) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1_000.0),
        None => match s.strip_suffix(['m', 'M']) {
            Some(n) => (n, 1_000_000.0),
            None => (s, 1.0),
        },
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a rate (write e.g. 2000, 5k, 20k/s)"))?;
    let r = n * mult;
    if !r.is_finite() || r <= 0.0 {
        return Err(format!("rate `{value}` must be above zero"));
    }
    Ok(r)
}

/// One origin (scheme, host, port) that connections are opened to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

/// One endpoint with everything per request precomputed, so the hot path only clones
/// reference-counted parts.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub origin: usize,
    pub method: Method,
    /// Origin-form (`/path?q`) for HTTP/1.1, absolute for HTTP/2 (`:authority` comes from it).
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The whole HTTP/1.1 request, encoded once (the HTTP/1.1 path writes these bytes as is).
    pub h1_request: Bytes,
    /// A HEAD request: its answer has no body whatever its headers say.
    pub head: bool,
    /// Idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE): the only
    /// methods the generator may send again after a reused connection failed under them.
    pub idempotent: bool,
}

/// A validated, fully resolved load: what [`super::start`] runs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub endpoints: Vec<Endpoint>,
    /// Cumulative weights, for picking an endpoint with one random number and a search.
    pub cumulative_weights: Vec<u64>,
    pub origins: Vec<Origin>,
    pub rate: Option<f64>,
    pub connections: usize,
    /// Open model: the pool may grow to this many connections.
    pub max_connections: usize,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub http2: bool,
    pub max_lag: Duration,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Load threads; 0 = the caller's runtime.
    pub threads: usize,
}

impl LoadSpec {
    /// What a person must know about how this load measures, said at validate and at run
    /// start: a closed model (no `rate`) waits for each answer before the next request, so
    /// its latency is not coordinated-omission corrected.
    pub fn model_note(&self) -> Option<&'static str> {
        self.rate.is_none().then_some(
            "the load is a closed model (no `rate`): each connection waits for its answer \
             before sending again, so its latency is NOT coordinated-omission corrected (a stall \
             delays the requests users would have sent instead of counting them slow); a second \
             with requests outstanding and none completing counts as unavailable. Set `rate` \
             for what users arriving at a fixed rate feel.",
        )
    }

    /// The most connections the open model opens: `max_connections`, by default the larger of
    /// `connections` and 1024.
    pub fn pool_cap(&self) -> usize {
        self.max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS)
            .max(self.connections)
    }

    /// A closed-model spec for one URL with the defaults, handy for tests and the CLI.
    pub fn for_url(url: impl Into<String>) -> LoadSpec {
        LoadSpec {
            url: Some(url.into()),
            endpoints: Vec::new(),
            rate: None,
            connections: default_connections(),
            max_connections: None,
            timeout: default_timeout(),
            connect_timeout: None,
            http2: false,
            max_lag: None,
            insecure: false,
            ca_file: None,
            threads: None,
        }
    }

    /// Checks everything and precomputes the requests. No socket is opened.
    pub(crate) fn resolve(&self) -> Result<Plan, LoadError> {
        let endpoints: Vec<EndpointSpec> = match (&self.url, self.endpoints.is_empty()) {
            (Some(url), true) => vec![EndpointSpec {
                url: url.clone(),
                method: default_method(),
                headers: BTreeMap::new(),
                body: None,
                weight: 1,
            }],
            (None, false) => self.endpoints.clone(),
            (Some(_), false) => return Err(LoadError::NoEndpoint { got: "both" }),
            (None, true) => return Err(LoadError::NoEndpoint { got: "neither" }),
        };
        if let Some(rate) = self.rate {
            if !rate.is_finite() || rate <= 0.0 {
                return Err(LoadError::OutOfRange {
                    field: "rate",
                    reason: format!("{rate} is not a positive number of requests per second"),
                });
            }
        }
        if self.connections == 0 {
            return Err(LoadError::OutOfRange {
                field: "connections",
                reason: "at least one connection is needed".into(),
            });
        }
        let timeout = self.timeout.get();
        if timeout.is_zero() {
            return Err(LoadError::OutOfRange {
                field: "timeout",
                reason: "a zero timeout fails every request".into(),
            });
        }
        let connect_timeout = self.connect_timeout.map_or(timeout, Dur::get);
        let max_lag = self.max_lag.map_or(DEFAULT_MAX_LAG, Dur::get);

        let mut origins: Vec<Origin> = Vec::new();
        let mut resolved = Vec::with_capacity(endpoints.len());
        let mut cumulative_weights = Vec::with_capacity(endpoints.len());
        let mut total: u64 = 0;
        for ep in &endpoints {
            let (origin, e) = resolve_endpoint(ep, self.http2)?;
            let idx = match origins.iter().position(|o| *o == origin) {
                Some(i) => i,
                None => {
                    origins.push(origin);
                    origins.len() - 1
                }
            };
            resolved.push(Endpoint { origin: idx, ..e });
            total += u64::from(ep.weight);
            cumulative_weights.push(total);
        }
        if total == 0 {
            return Err(LoadError::OutOfRange {
                field: "endpoints.weight",
                reason: "all weights are zero, nothing would be sent".into(),
            });
        }
        let tls = if origins.iter().any(|o| o.tls) {
            Some(Arc::new(super::tls::tls_config(
                self.http2,
                self.insecure,
                self.ca_file.as_deref(),
            )?))
        } else {
            None
        };
        Ok(Plan {
            endpoints: resolved,
            cumulative_weights,
            origins,
            rate: self.rate,
            connections: self.connections,
            timeout,
            connect_timeout,
            http2: self.http2,
            max_connections: self.pool_cap(),
            max_lag,
            tls,
            threads: self
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        })
    }
}

fn resolve_endpoint(ep: &EndpointSpec, http2: bool) -> Result<(Origin, Endpoint), LoadError> {
    let bad = |reason: &str| LoadError::BadUrl {
        url: ep.url.clone(),
        reason: reason.to_owned(),
    };
    let uri: Uri = ep
        .url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => return Err(bad(&format!("scheme `{other}` is not http or https"))),
        None => return Err(bad("no scheme; write http://host:port/path")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let method = Method::from_bytes(ep.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
        LoadError::BadMethod {
            method: ep.method.clone(),
            url: ep.url.clone(),
        }
    })?;
    let mut headers = HeaderMap::new();
    if !http2 {
        // hyper's connection-level client does not add Host; HTTP/1.1 requires it. HTTP/2
        // carries the authority in `:authority`, taken from the absolute URI.
        let v = HeaderValue::from_str(authority.as_str()).map_err(|e| bad(&e.to_string()))?;
        headers.insert(HOST, v);
    }
    for (name, value) in &ep.headers {
        let bad_header = |reason: String| LoadError::BadHeader {
            name: name.clone(),
            url: ep.url.clone(),
            reason,
        };
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad_header(e.to_string()))?;
        let v = HeaderValue::from_str(value).map_err(|e| bad_header(e.to_string()))?;
        if http2 && n == HOST {
            continue;
        }
        headers.insert(n, v);
    }
    let body = Bytes::from(ep.body.clone().unwrap_or_default());
    let pq = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let h1_request = super::h1::encode_request(&method, &pq, &headers, &body);
    let uri = if http2 {
        uri
    } else {
        Uri::builder()
            .path_and_query(pq.as_str())
            .build()
            .map_err(|e| bad(&e.to_string()))?
    };
    Ok((
        Origin { tls, host, port },
        Endpoint {
            origin: 0,
            head: method == Method::HEAD,
            idempotent: matches!(
                method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            ),
            method,
            uri,
            headers,
            body,
            h1_request,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_accept_suffixes() {
        assert_eq!(parse_rate("2000").unwrap(), 2000.0);
        assert_eq!(parse_rate("5k").unwrap(), 5000.0);
        assert_eq!(parse_rate("1.5k/s").unwrap(), 1500.0);
        assert_eq!(parse_rate("300/s").unwrap(), 300.0);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn url_and_endpoints_are_exclusive() {
        let mut s = LoadSpec::for_url("http://127.0.0.1:1/");
        s.endpoints.push(EndpointSpec {
            url: "http://127.0.0.1:1/".into(),
            method: "GET".into(),
            headers: BTreeMap::new(),
            body: None,
            weight: 1,
        });
        assert!(matches!(
            s.resolve(),
            Err(LoadError::NoEndpoint { got: "both" })
        ));
    }

    #[test]
    fn endpoints_share_origins_and_keep_weights() {
        let yaml = r#"
endpoints:
  - url: http://127.0.0.1:8080/a
    weight: 3
  - url: http://127.0.0.1:8080/b?x=1
    method: post
    headers: { content-type: application/json }
    body: '{"a":1}'
rate: 100
timeout: 2s
"#;
        let spec: LoadSpec = serde_saphyr::from_str(yaml).unwrap();
        let plan = spec.resolve().unwrap();
        assert_eq!(plan.origins.len(), 1);
        assert_eq!(plan.cumulative_weights, vec![3, 4]);
        assert_eq!(plan.endpoints[1].method, Method::POST);
        assert_eq!(plan.endpoints[1].uri.to_string(), "/b?x=1");
        assert_eq!(plan.endpoints[1].headers[HOST], "127.0.0.1:8080");
        assert_eq!(plan.timeout, Duration::from_secs(2));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<LoadSpec, _> = serde_saphyr::from_str("url: http://x/\nrat: 5\n");
        assert!(r.is_err());
    }

    #[test]
    fn bad_scheme_is_refused() {
        let s = LoadSpec::for_url("ftp://127.0.0.1/");
        assert!(matches!(s.resolve(), Err(LoadError::BadUrl { .. })));
    }
}
