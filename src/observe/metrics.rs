//! Prometheus metrics of a run under `/metrics` (manifesto O-6 to O-9), on 127.0.0.1:8067 by
//! default: bound to loopback unless told otherwise, because a gameday runner's state is
//! nobody else's business (S-2).
//!
//! The engine updates the metrics as things happen; the load's one-second windows feed the
//! request counters and the latency histogram. `prometheus-client` renders the OpenMetrics
//! text; the HTTP side is a few lines of hyper, already a dependency for the load generator.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// The default metrics address (manifesto O-7: port 8067).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8067";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    kind: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevertLabels {
    kind: String,
    target: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SloLabels {
    slo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

/// The run's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    active: Family<FaultLabels, Gauge>,
    injections: Family<FaultLabels, Counter>,
    reverts: Family<RevertLabels, Counter>,
    requests: Family<OutcomeLabels, Counter>,
    retries: Counter,
    latency: Histogram,
    slo_ok: Family<SloLabels, Gauge>,
    phase: Family<PhaseLabels, Gauge>,
    stop: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric of gameday, the build info set.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("gameday");
        let build: Family<VersionLabels, Gauge> = Family::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                service: "gameday".into(),
            })
            .set(1);
        r.register(
            "build_info",
            "The running gameday's version (always 1)",
            build,
        );
        let active = Family::<FaultLabels, Gauge>::default();
        r.register(
            "active_faults",
            "Faults injected and not yet reverted, by kind",
            active.clone(),
        );
        let injections = Family::<FaultLabels, Counter>::default();
        r.register("injections", "Injections made, by kind", injections.clone());
        let reverts = Family::<RevertLabels, Counter>::default();
        r.register(
            "reverts",
            "Reverts attempted, by kind and outcome (ok, failed)",
            reverts.clone(),
        );
        let requests = Family::<OutcomeLabels, Counter>::default();
        r.register(
            "load_requests",
            "Load requests by outcome (ok, dropped, or the error class)",
            requests.clone(),
        );
        let retries = Counter::default();
        r.register(
            "load_retries",
            "Requests sent again after a reused keep-alive connection failed under them \
             (idempotent methods only; each request is counted once in load_requests)",
            retries.clone(),
        );
        // Buckets from 1 ms to ~33 s: the range an SLO on user latency cares about.
        let latency = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.001, 2.0, 16,
        ));
        r.register(
            "load_latency_seconds",
            "Load latency from the intended send time (coordinated-omission corrected)",
            latency.clone(),
        );
        let slo_ok = Family::<SloLabels, Gauge>::default();
        r.register(
            "hypothesis_slo_ok",
            "1 while an SLO holds (its last second of load known for certain, or its probe's last reading), 0 when broken",
            slo_ok.clone(),
        );
        let phase = Family::<PhaseLabels, Gauge>::default();
        r.register("phase", "1 for the phase running now", phase.clone());
        let stop: Gauge = Gauge::default();
        r.register(
            "stop_condition_fired",
            "1 once a stop condition aborted the run",
            stop.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            active,
            injections,
            reverts,
            requests,
            retries,
            latency,
            slo_ok,
            phase,
            stop,
        }
    }

    /// A fault was injected.
    pub fn injected(&self, kind: &str, target: &str, durable: bool) {
        let l = FaultLabels {
            kind: kind.into(),
            target: target.into(),
        };
        self.injections.get_or_create(&l).inc();
        if durable {
            self.active.get_or_create(&l).inc();
        }
    }

    /// A revert finished.
    pub fn reverted(&self, kind: &str, target: &str, ok: bool) {
        let l = FaultLabels {
            kind: kind.into(),
            target: target.into(),
        };
        self.reverts
            .get_or_create(&RevertLabels {
                kind: kind.into(),
                target: target.into(),
                outcome: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
        if ok {
            self.active.get_or_create(&l).dec();
        }
    }

    /// The phase now running.
    pub fn set_phase(&self, name: &str) {
        self.phase.clear();
        self.phase
            .get_or_create(&PhaseLabels { phase: name.into() })
            .set(1);
    }

    /// A stop condition fired.
    pub fn stopped(&self) {
        self.stop.set(1);
    }

    /// One final window of load: its outcomes are counted once, when they are all known.
    pub fn window(&self, w: &crate::load::Window) {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: "ok".into(),
            })
            .inc_by(w.ok);
        if w.dropped > 0 {
            self.requests
                .get_or_create(&OutcomeLabels {
                    outcome: "dropped".into(),
                })
                .inc_by(w.dropped);
        }
        for class in crate::load::ErrorClass::ALL {
            let n = w.errors.get(class);
            if n > 0 {
                self.requests
                    .get_or_create(&OutcomeLabels {
                        outcome: class.as_str().into(),
                    })
                    .inc_by(n);
            }
        }
        if let Ok(h) = w.histograms.latency.decode() {
            for v in h.iter_recorded() {
                let secs = v.value_iterated_to() as f64 / 1e6;
                for _ in 0..v.count_at_value() {
                    self.latency.observe(secs);
                }
            }
        }
        self.retries.inc_by(w.retries);
    }

    /// One SLO's status now (the load's last second, or a probe's last reading).
    pub fn slo_status(&self, name: &str, ok: bool) {
        self.slo_ok
            .get_or_create(&SloLabels {
                slo: name.to_owned(),
            })
            .set(i64::from(ok));
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Errors starting the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address is taken or not ours to bind.
    #[error("cannot serve metrics on {addr}: {source}; pass --metrics-addr with a free address, or --metrics-addr none")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Serves `/metrics` on `addr` until `cancel`. Binds before returning, so a taken port is an
/// error before the run touches anything. Returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    cancel: CancellationToken,
) -> Result<SocketAddr, MetricsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let metrics = metrics.clone();
                        async move {
                            let resp = if req.uri().path() == "/metrics" {
                                hyper::Response::builder()
                                .header("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
                                .body(Full::new(Bytes::from(metrics.render())))
                            } else {
                                hyper::Response::builder()
                                    .status(404)
                                    .body(Full::new(Bytes::from_static(b"see /metrics\n")))
                            };
                            Ok::<_, std::convert::Infallible>(resp.expect("static response"))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(bound)
}
