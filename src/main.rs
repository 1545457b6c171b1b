//! The `gameday` binary: parses the command line and hands over to the library.

use clap::{Parser, Subcommand};

/// A chaos-engineering gameday runner.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-render a run's report from its journal, or compare it with an older run.
    Report(gameday::report::cli::ReportArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report(args) => gameday::report::cli::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
