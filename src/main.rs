//! The `gameday` binary: parses the command line and hands over to the library.
//! (Minimal wiring of `gameday load` from the load branch; the lead's CLI replaces it.)

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive HTTP load at a URL and measure it (open model with --rate, closed without).
    Load(gameday::load::cli::LoadArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The load generator runs on its own threads; the command itself (collector, progress)
    // needs only one.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Load(args) => rt.block_on(gameday::load::cli::run(args)),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
