//! The command line, declared with clap's derive API. Parsing only: each subcommand's work
//! lives in [`crate::commands`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::observe::logging::LogFormat;

/// gameday: run a chaos-engineering gameday from one scenario file: inject faults, drive
/// load, judge the steady-state hypothesis, revert everything, write the report.
#[derive(Debug, Parser)]
#[command(name = "gameday", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` (one object per line) for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GAMEDAY_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log level or filter (`info`, `debug`, `gameday=debug`); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info", env = "GAMEDAY_LOG_LEVEL")]
    pub log_level: String,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check scenario files and report every problem as FILE:LINE:COL. Never contacts a target.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the resolved timeline and what each fault would hit now, with blast radius and
    /// preflight checks. Read-only: nothing is injected, started or written.
    Plan(PlanArgs),
    /// Run a gameday: start targets and load, inject the timeline's faults, revert them all,
    /// judge the hypothesis, write the report.
    Run(RunArgs),
    /// Revert what a killed run left behind, from its ledger. Idempotent.
    Recover(RecoverArgs),
    /// Print the scenario format's JSON Schema (for editors).
    Schema,
    /// Drive HTTP load at a URL and measure it, on its own: open model with --rate
    /// (coordinated-omission corrected), closed model without.
    Load(crate::load::cli::LoadArgs),
    /// Run the built-in demo service (frontend or backend), as the demo scenario's fleet does.
    DemoService(crate::demo::DemoArgs),
    /// Re-render a run's report from its journal.json, or compare it with an older run
    /// (exit 1 on a regression).
    Report(crate::report::cli::ReportArgs),
    /// Work with the playbook of a running DR drill.
    #[command(subcommand)]
    Playbook(PlaybookCommand),
    /// List every run under --out with its verdict, findings, key SLO values and resilience
    /// score, flag regressions against each scenario's previous run, and optionally write
    /// the trend page (--html).
    History(crate::report::cli::HistoryArgs),
}

/// `gameday plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Resolve as `run --yes` would: a kube context the scenario does not name, AWS
    /// credentials of an account it does not name.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `gameday run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Where runs are written; each run gets its own folder inside.
    #[arg(long, default_value = "reports", env = "GAMEDAY_OUT")]
    pub out: PathBuf,
    /// Only show the plan (same as `gameday plan`); nothing is touched.
    #[arg(long)]
    pub dry_run: bool,
    /// Proceed without confirmation where one would be asked (a kube context the scenario
    /// does not name).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Serve Prometheus metrics under /metrics on this address while the run goes (`none` to
    /// turn off). Loopback by default: expose it elsewhere only on purpose. A taken address
    /// stops the run before it starts, except the default: then another free port is used,
    /// with a warning.
    #[arg(long, default_value = crate::observe::metrics::DEFAULT_ADDR, env = "GAMEDAY_METRICS_ADDR")]
    pub metrics_addr: String,
    /// Someone taking part (repeat it for each); added to the scenario's `participants` in
    /// the report.
    #[arg(long = "participant", value_name = "NAME")]
    pub participants: Vec<String>,
}

/// `gameday playbook`.
#[derive(Debug, clap::Subcommand)]
pub enum PlaybookCommand {
    /// Confirm that a step of a running DR drill's playbook is done, from any shell: the
    /// report shows who confirmed it and when.
    Confirm {
        /// The run: its folder, or its id (printed at its start).
        run: String,
        /// The step: its number (1-based) or a part of its text that names one step.
        step: String,
        /// Who did it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

/// `gameday recover`.
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The ledger to recover (a `ledger.jsonl`, or the run folder that holds it); without
    /// it, every unfinished run under `--out` and in the run index
    /// (`$XDG_STATE_HOME/gameday`, else `~/.local/state/gameday`).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Where runs are written (searched when `--ledger` is not given).
    #[arg(long, default_value = "reports", env = "GAMEDAY_OUT")]
    pub out: PathBuf,
    /// Recover even if the ledger's runner seems alive.
    #[arg(long)]
    pub force: bool,
}
