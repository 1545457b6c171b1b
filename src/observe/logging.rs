//! Logging: readable text on stderr by default, one JSON object per line with
//! `--log-format json` (manifesto O-4). Every record carries `service="gameday"` (O-2); inside
//! a run, the `run` span adds the run id and the scenario name to each record.

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

/// The log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the span fields (run id, scenario, phase).
    Json,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive (`info`,
/// `gameday=debug`); `RUST_LOG` wins when set.
pub fn init(format: LogFormat, level: &str) {
    // hickory-server logs every DNS query of the sandbox at info: keep those out of the
    // runner's log unless asked for by name.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("hickory_server=warn,hickory_proto=warn,{level}"))
    });
    let result = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            // Colours for a person at a terminal only: a log piped to a file or a CI job
            // must not carry escape codes (and NO_COLOR turns them off, as everywhere).
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .with_target(false)
            .compact()
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_span_events(FmtSpan::NONE)
            .flatten_event(true)
            .try_init(),
    };
    // A second init (tests calling the library twice) keeps the first subscriber.
    let _ = result;
}

/// The span every record of the process sits in: it carries `service="gameday"`.
pub fn service_span() -> tracing::Span {
    tracing::info_span!(
        "gameday",
        service = "gameday",
        version = env!("CARGO_PKG_VERSION")
    )
}
