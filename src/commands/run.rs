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
        return super::plan::run(&args.file, false, args.yes).await;
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
        metrics_addr_is_default: args.metrics_addr == crate::observe::metrics::DEFAULT_ADDR,
    };
    if let Err(e) = signals::install(abort.clone(), active.clone()) {
        eprintln!("gameday: cannot install signal handlers: {e}; nothing was started");
        return super::EXIT_INTERNAL;
    }
    let result = match runner::run(&loaded, &opts, abort, active).await {
        Ok(r) => r,
        // Only a run folder or ledger that cannot be written gets here, before anything was
        // started: nothing to revert, so not exit 4 ("run recover") but 5 ("could not start").
        Err(e) => {
            eprintln!(
                "gameday: {e:#}\nnothing was started or injected; free space (or fix permissions) under {} and run again",
                args.out.display()
            );
            return Outcome::Unreachable.exit_code();
        }
    };
    let journal = result.run_dir.join("run.json");
    if let Err(e) = write_private(
        &journal,
        &serde_json::to_vec_pretty(&result).unwrap_or_default(),
    ) {
        eprintln!("gameday: cannot write {}: {e}", journal.display());
    }
    // The report: journal.json, report.md, report.html, junit.xml in the run folder.
    let mut report = crate::report::journal_from_run(&result, &loaded);
    for p in &args.participants {
        if !report.run.participants.contains(p) {
            report.run.participants.push(p.clone());
        }
    }
    if let Err(e) = crate::report::write_all(&report, &result.run_dir) {
        eprintln!("gameday: cannot write the report: {e}");
    }
    // The hypothesis is the verdict; what users felt beyond the tolerance is said beside it.
    let findings = match report.findings().count() {
        0 => String::new(),
        1 => " · 1 finding".to_owned(),
        n => format!(" · {n} findings"),
    };
    let verdict = match result.outcome {
        Outcome::Held => format!("HYPOTHESIS HELD{findings}"),
        Outcome::Violated => format!("HYPOTHESIS VIOLATED{findings}"),
        Outcome::Aborted => format!(
            "ABORTED ({}); every fault was reverted",
            result.abort_reason.as_deref().unwrap_or("?")
        ),
        Outcome::RevertIncomplete => match &result.ledger_error {
            Some(why) => format!("REVERT NOT CONFIRMED: {why}"),
            None => format!(
                "REVERT INCOMPLETE: {} injection(s) still active; run `gameday recover --ledger {}`",
                result.pending,
                result.ledger_path.display()
            ),
        },
        Outcome::Unreachable => format!(
            "TARGET UNREACHABLE: {}",
            result.abort_reason.as_deref().unwrap_or("?")
        ),
    };
    print!("{}", crate::report::render_terminal(&report));
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
    // A fault that never took effect was not tested: say so next to the verdict, or a held
    // hypothesis would claim more than the gameday showed.
    // A repeating fault (`every:`) refused round after round gives the same reason each
    // time: say each reason once, with how often.
    for f in result.faults.iter().filter(|f| !f.errors.is_empty()) {
        let mut reasons: Vec<(&str, usize)> = Vec::new();
        for e in &f.errors {
            match reasons.iter_mut().find(|(r, _)| *r == e.as_str()) {
                Some((_, n)) => *n += 1,
                None => reasons.push((e, 1)),
            }
        }
        let reasons: Vec<String> = reasons
            .into_iter()
            .map(|(r, n)| {
                if n > 1 {
                    format!("{r} ({n} times)")
                } else {
                    r.to_owned()
                }
            })
            .collect();
        println!(
            "⚠ fault `{}` could not be injected as planned: {}",
            f.name,
            reasons.join("; ")
        );
    }
    println!("{verdict}");
    println!("run folder: {}", result.run_dir.display());
    result.outcome.exit_code()
}

/// Writes a run-folder file readable by owner and group only (0640), whatever the umask.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}
