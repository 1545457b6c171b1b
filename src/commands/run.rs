//! `gameday run FILE`: a whole gameday, from validation to the verdict.

use std::sync::Arc;

use super::EXIT_INVALID;
use crate::cli::RunArgs;
use crate::engine::runner::{self, Abort, Outcome, RunOptions};
use crate::engine::signals;
use crate::scenario;

/// Runs the gameday and prints its verdict. Exit codes as in the README.
pub async fn run(args: &RunArgs) -> i32 {
    if args.dry_run {
        return super::plan::run(&args.file, false).await;
    }
    let loaded = match scenario::load(&args.file) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            return EXIT_INVALID;
        }
    };
    let abort = Abort::new();
    let active: runner::ActiveSet = Arc::default();
    let metrics_addr = match args.metrics_addr.as_str() {
        "none" | "off" | "" => None,
        a => match a.parse() {
            Ok(addr) => Some(addr),
            Err(e) => {
                eprintln!(
                    "gameday: --metrics-addr `{a}` is not an address like 127.0.0.1:8067 ({e})"
                );
                return EXIT_INVALID;
            }
        },
    };
    let opts = RunOptions {
        out_dir: args.out.clone(),
        yes: args.yes,
        progress: !args.no_progress,
        metrics_addr,
    };
    if let Err(e) = signals::install(abort.clone(), active.clone(), args.out.clone()) {
        eprintln!("gameday: cannot install signal handlers: {e}");
        return 4;
    }
    let result = match runner::run(&loaded, &opts, abort, active).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gameday: {e:#}");
            return 4;
        }
    };
    let journal = result.run_dir.join("run.json");
    if let Err(e) = std::fs::write(
        &journal,
        serde_json::to_vec_pretty(&result).unwrap_or_default(),
    ) {
        eprintln!("gameday: cannot write {}: {e}", journal.display());
    }
    let verdict = match result.outcome {
        Outcome::Held => "HYPOTHESIS HELD".to_string(),
        Outcome::Violated => "HYPOTHESIS VIOLATED".to_string(),
        Outcome::Aborted => format!(
            "ABORTED ({}); every fault was reverted",
            result.abort_reason.as_deref().unwrap_or("?")
        ),
        Outcome::RevertIncomplete => format!(
            "REVERT INCOMPLETE: {} injection(s) still active; run `gameday recover --ledger {}`",
            result.pending,
            result.ledger_path.display()
        ),
        Outcome::Unreachable => format!(
            "TARGET UNREACHABLE: {}",
            result.abort_reason.as_deref().unwrap_or("?")
        ),
    };
    for s in &result.slos {
        let phases: Vec<String> = s
            .per_phase
            .iter()
            .map(|p| {
                format!(
                    "{}={}{}",
                    p.phase,
                    p.observed
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_else(|| "n/a".into()),
                    if p.passed { "" } else { " ✗" }
                )
            })
            .collect();
        println!(
            "{} {:<28} {:<34} {}",
            if s.passed { "✓" } else { "✗" },
            s.name,
            s.objective,
            phases.join("  ")
        );
    }
    println!("{verdict}");
    println!("run folder: {}", result.run_dir.display());
    result.outcome.exit_code()
}
