//! gameday: a chaos-engineering gameday runner.
//!
//! The flow, and the folders that hold it: a [`scenario`] (YAML) is parsed and validated into
//! a plan; the [`engine`] runs its timeline, injecting faults into [`targets`] through a
//! write-ahead ledger and reverting them on every way out; the [`load`] generator drives the
//! system all along and measures what users would feel; the [`report`] says what happened.
//! [`observe`] holds the runner's own logs; [`cli`] and [`commands`] are the front door.

pub mod cli;
pub mod commands;
pub mod demo;
pub mod duration;
pub mod engine;
pub mod failpoints;
pub mod ledger;
pub mod load;
pub mod observe;
pub mod report;
pub mod scenario;
pub mod targets;

use cli::{Cli, Command};

/// Selects rustls's process-wide crypto provider, once. Two providers are compiled in (ring,
/// which the load generator and `kube` use, and aws-lc, which the AWS SDK brings), and then
/// rustls refuses to guess: a client built without an explicit provider would panic. Called
/// by [`run`] and by every place that builds such a client.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    install_crypto_provider();
    observe::logging::init(cli.log_format, &cli.log_level);
    if let Err(e) = failpoints::configure_from_env() {
        eprintln!("gameday: {e}");
        return commands::EXIT_INVALID;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gameday: cannot start the async runtime: {e}; nothing was started");
            return commands::EXIT_INTERNAL;
        }
    };
    let span = observe::logging::service_span();
    let _g = span.enter();
    match cli.command {
        Command::Validate { files } => commands::validate::run(&files),
        Command::Plan(a) => rt.block_on(commands::plan::run(&a.file, a.json, a.yes)),
        Command::Run(a) => rt.block_on(commands::run::run(&a)),
        Command::Recover(a) => rt.block_on(commands::recover::run(&a)),
        Command::Playbook(c) => commands::playbook::run(&c),
        Command::Load(a) => match rt.block_on(load::cli::run(a)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("gameday load: {e:#}");
                commands::EXIT_INVALID
            }
        },
        Command::DemoService(a) => match rt.block_on(demo::run(a)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("gameday demo-service: {e:#}");
                commands::EXIT_INVALID
            }
        },
        Command::Report(a) => match report::cli::run(a) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("gameday: {e:#}");
                commands::EXIT_INVALID
            }
        },
        Command::History(a) => match report::cli::run_history(a) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("gameday history: {e:#}");
                commands::EXIT_INVALID
            }
        },
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&scenario::json_schema()).unwrap_or_default()
            );
            0
        }
    }
}
