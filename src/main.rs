//! The `gameday` binary: parse the command line, hand it to the library, exit with its code.

use clap::Parser;

fn main() {
    std::process::exit(gameday::run(gameday::cli::Cli::parse()));
}
