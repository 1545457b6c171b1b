//! `gameday load URL`: the load generator on its own, like vegeta or oha. Open model with
//! `--rate`, closed model (as fast as the connections allow) without. Prints a summary table,
//! or exactly one JSON object with `--json`; `--hdr-log` writes a standard HdrHistogram
//! interval log (one latency histogram per second, service and lag tagged) that HdrHistogram's
//! own tools can plot.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::{EndpointSpec, LoadSpec, LoadSummary, Percentiles, Window};
use crate::duration::{parse_duration, Dur};

/// Arguments of `gameday load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// URL to load (http:// or https://).
    pub url: String,
    /// Requests per second (open model: constant arrival rate, latency counted from each
    /// request's intended send time). Accepts `2000`, `5k`, `20k/s`. Without it: closed model,
    /// as fast as the connections allow.
    #[arg(short = 'r', long, value_parser = super::parse_rate)]
    pub rate: Option<f64>,
    /// How long to send (`30s`, `2m`).
    #[arg(short = 'z', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Keep-alive connections opened up front (closed model: the requests in flight).
    #[arg(short = 'c', long, default_value_t = 64)]
    pub connections: usize,
    /// Open model: the most connections opened when every one is busy (default the larger of
    /// --connections and 1024); equal to --connections for a fixed pool.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Speak HTTP/2 (h2c prior knowledge on http://, ALPN on https://).
    #[arg(long)]
    pub http2: bool,
    /// HTTP method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Request header `Name: value`; repeat for several.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(short = 'd', long)]
    pub body: Option<String>,
    /// Request timeout (`10s`, `500ms`).
    #[arg(short = 't', long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// TCP connect and TLS handshake timeout; default: the request timeout.
    #[arg(long, value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Generator lag above which a second is marked untrusted (the generator, not the target,
    /// was late).
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub max_lag: Duration,
    /// Accept any TLS certificate.
    #[arg(long)]
    pub insecure: bool,
    /// PEM file of CA certificates to trust for https://.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Threads the generator runs on (each its own runtime and share of the connections);
    /// default one per CPU.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print exactly one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write an HdrHistogram interval log (latency per second, µs values in ms) to this file.
    #[arg(long)]
    pub hdr_log: Option<PathBuf>,
}

impl LoadArgs {
    /// The equivalent scenario `load:` section.
    pub fn to_spec(&self) -> anyhow::Result<LoadSpec> {
        let mut headers = std::collections::BTreeMap::new();
        for h in &self.headers {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("header `{h}` is not `Name: value`"))?;
            headers.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        Ok(LoadSpec {
            url: None,
            endpoints: vec![EndpointSpec {
                url: self.url.clone(),
                method: self.method.clone(),
                headers,
                body: self.body.clone(),
                weight: 1,
            }],
            rate: self.rate,
            connections: self.connections,
            max_connections: self.max_connections,
            timeout: Dur(self.timeout),
            connect_timeout: self.connect_timeout.map(Dur),
            http2: self.http2,
            max_lag: Some(Dur(self.max_lag)),
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            threads: self.threads,
        })
    }
}

/// Runs `gameday load`; returns the process exit code (0: the run completed, whatever the
/// target answered; errors before any request are `Err`). Ctrl-C ends the run early and still
/// prints the summary.
pub async fn run(args: LoadArgs) -> anyhow::Result<i32> {
    let spec = args.to_spec()?;
    let wall_start = SystemTime::now();
    let (handle, mut rx) =
        super::start(&spec, CancellationToken::new()).context("cannot start the load")?;
    let t0 = handle.started_at();
    handle.stop_at(args.duration);
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .expect("a valid progress template"),
    );
    let mut windows: Vec<Window> = Vec::new();
    let deadline = tokio::time::Instant::from_std(t0 + args.duration);
    let mut interrupted = false;
    // Final windows come a timeout after their second; the progress line shows the live view.
    let mut live = handle.live();
    loop {
        tokio::select! {
            Some(w) = rx.recv() => {
                // Kept only for the log, so a long run without one stays flat in memory.
                if args.hdr_log.is_some() {
                    windows.push(w);
                }
            }
            Ok(()) = live.changed() => {
                if let Some(w) = live.borrow_and_update().windows.last() {
                    bar.set_message(progress_line(w));
                    bar.tick();
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tokio::signal::ctrl_c() => { interrupted = true; break }
        }
    }
    let end = if interrupted {
        t0.elapsed()
    } else {
        args.duration
    };
    let summary = handle.finish_at(end).await;
    while let Some(w) = rx.recv().await {
        if args.hdr_log.is_some() {
            windows.push(w);
        }
    }
    bar.finish_and_clear();
    if let Some(path) = &args.hdr_log {
        write_hdr_log(path, wall_start, &windows)
            .with_context(|| format!("cannot write the hdr log {}", path.display()))?;
    }
    let out = if args.json {
        serde_json::to_string(&json_summary(&args, &summary, interrupted))? + "\n"
    } else {
        table(&args, &summary, interrupted)
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(0)
}

fn progress_line(w: &super::LiveWindow) -> String {
    let known = w.ok + w.failed();
    format!(
        "{:>8.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}{}",
        known as f64 / w.duration_s.max(1e-3),
        w.latency_bounds(50.0).0,
        w.latency_bounds(99.0).0,
        w.failed(),
        if w.pending > 0 {
            format!("  waiting {}", w.pending)
        } else {
            String::new()
        }
    )
}

/// What `gameday load --json` prints: one object whose keys are a contract for scripts
/// (see docs/load.md), published as `schemas/load.schema.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadReport {
    /// The URL that was loaded.
    pub url: String,
    /// `open` (with `--rate`: requests at their intended times) or `closed`.
    pub model: String,
    /// Connections used.
    pub connections: usize,
    /// HTTP/2 was used.
    pub http2: bool,
    /// Requests completed (ok and failed).
    pub requests: u64,
    /// Requests answered 1xx-3xx.
    pub ok: u64,
    /// How long the load ran, seconds.
    pub duration_s: f64,
    /// Requests per second asked for (open model).
    pub rate_requested: Option<f64>,
    /// Requests completed per second.
    pub rate_achieved: f64,
    /// Requests never sent: no connection was free for them before their deadline (the
    /// generator could not send them; each is a failure of its intended second).
    pub dropped: u64,
    /// Requests sent later than `max_lag` after their intended time.
    pub late: u64,
    /// Times a request was sent again after a reused keep-alive connection failed under it
    /// (idempotent methods only; each request still counts once).
    pub retries: u64,
    /// Closed model: windows in which requests were outstanding and none completed (a hang).
    pub stalled_windows: u64,
    /// Failed requests by class.
    pub errors: super::ErrorCounts,
    /// Every failed request.
    pub errors_total: u64,
    /// Latency from the intended send time, ms (coordinated-omission corrected).
    pub latency_ms: Percentiles,
    /// Service time from the actual send, ms.
    pub service_ms: Percentiles,
    /// Generator lag, ms.
    pub lag_ms: Percentiles,
    /// One-second windows measured.
    pub windows: u64,
    /// Indices of the windows in which the generator itself was late (their latencies may
    /// be its own).
    pub untrusted_windows: Vec<u64>,
    /// Ctrl-C ended the load early.
    pub interrupted: bool,
}

/// The JSON Schema of [`LoadReport`].
pub fn load_report_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(LoadReport)).expect("a schema always serializes")
}

/// The `--json` object.
pub fn json_summary(args: &LoadArgs, s: &LoadSummary, interrupted: bool) -> LoadReport {
    LoadReport {
        url: args.url.clone(),
        model: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        }
        .to_owned(),
        connections: args.connections,
        http2: args.http2,
        requests: s.requests,
        ok: s.ok,
        duration_s: s.duration_s,
        rate_requested: s.rate_requested,
        rate_achieved: s.rate_achieved,
        dropped: s.dropped,
        late: s.late,
        retries: s.retries,
        stalled_windows: s.stalled_windows,
        errors: s.errors,
        errors_total: s.errors.total(),
        latency_ms: s.latency,
        service_ms: s.service,
        lag_ms: s.lag,
        windows: s.windows,
        untrusted_windows: s.untrusted_windows.clone(),
        interrupted,
    }
}

fn table(args: &LoadArgs, s: &LoadSummary, interrupted: bool) -> String {
    let mut o = String::new();
    let model = match s.rate_requested {
        Some(r) => format!("open model, {r:.0} req/s requested"),
        None => "closed model".to_owned(),
    };
    o += &format!(
        "gameday load {}: {model}, {} connections{}, {:.1} s{}\n\n",
        args.url,
        args.connections,
        if args.http2 { ", HTTP/2" } else { "" },
        s.duration_s,
        if interrupted { " (interrupted)" } else { "" }
    );
    o += &format!(
        "  requests   {:>10}  ok {}  dropped {}  late {}  retries {}\n",
        s.requests, s.ok, s.dropped, s.late, s.retries
    );
    o += &format!("  rate       {:>10.1} req/s achieved\n", s.rate_achieved);
    let errs: Vec<String> = super::ErrorClass::ALL
        .iter()
        .filter(|c| s.errors.get(**c) > 0)
        .map(|c| format!("{c} {}", s.errors.get(*c)))
        .collect();
    o += &format!(
        "  errors     {:>10}  {}\n\n",
        s.errors.total(),
        if errs.is_empty() {
            String::new()
        } else {
            errs.join(", ")
        }
    );
    o += &format!(
        "  {:<24}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
        "ms", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    for (name, p) in [
        ("latency (from intended)", &s.latency),
        ("service (from send)", &s.service),
        ("generator lag", &s.lag),
    ] {
        o += &format!(
            "  {:<24}{:>10.2}{:>10.2}{:>10.2}{:>10.2}{:>10.2}{:>10.2}\n",
            name, p.p50, p.p90, p.p99, p.p999, p.max, p.mean
        );
    }
    o += "\n";
    if s.dropped > 0 {
        o += &format!(
            "  {} requests DROPPED by the generator: all {} connections it may open were busy \
             until their deadline, so they were never sent (the generator, not the target, could \
             not send; they count as failures of the second they were meant for). Raise \
             --max-connections to measure the target instead.\n",
            s.dropped, s.connections_peak
        );
    }
    if s.rate_requested.is_none() {
        o += "  closed model: not coordinated-omission corrected (each connection waits for \
              its answer before the next request); a second with requests outstanding and none \
              completing counts as unavailable. Use --rate for what users at a fixed rate feel.\n";
        if s.stalled_windows > 0 {
            o += &format!(
                "  {} second(s) STALLED: requests outstanding and none completed\n",
                s.stalled_windows
            );
        }
    }
    if s.untrusted_windows.is_empty() {
        o += &format!(
            "  all {} one-second windows trusted (generator lag within bounds)\n",
            s.windows
        );
    } else {
        o += &format!(
            "  UNTRUSTED windows (generator lagged; latency there may be the generator's fault): {:?}\n",
            s.untrusted_windows
        );
    }
    o
}

/// Writes the windows as a standard HdrHistogram interval log: untagged latency (what the
/// HdrHistogram plotters show by default), then `service` and `lag` tagged, values in ms.
fn write_hdr_log(
    path: &std::path::Path,
    start: SystemTime,
    windows: &[Window],
) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("gameday load: latency from intended send time; tags service and lag")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut file, &mut serializer)?;
    let tags = (
        Tag::new("service").expect("valid tag"),
        Tag::new("lag").expect("valid tag"),
    );
    for w in windows {
        let at = Duration::from_secs_f64(w.start_s);
        let len = Duration::from_secs_f64(w.duration_s);
        let wr = |e| anyhow::anyhow!("{e}");
        log.write_histogram(&w.histograms.latency.decode()?, at, len, None)
            .map_err(wr)?;
        log.write_histogram(&w.histograms.service.decode()?, at, len, Some(tags.0))
            .map_err(wr)?;
        log.write_histogram(&w.histograms.lag.decode()?, at, len, Some(tags.1))
            .map_err(wr)?;
    }
    drop(log);
    file.flush()?;
    Ok(())
}
