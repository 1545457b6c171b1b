//! The `gameday` binary. Minimal until the lead's CLI lands: only `demo-service` is wired.

use clap::Parser;

#[derive(Debug, clap::Parser)]
#[command(version, about)]
enum Cli {
    /// Run the built-in demo service (what `scenarios/demo.yaml`'s fleet runs).
    DemoService(gameday::demo::DemoArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli {
        Cli::DemoService(args) => rt.block_on(gameday::demo::run(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
