//! `gameday recover`: revert what killed runs left behind.

use crate::cli::RecoverArgs;
use std::path::PathBuf;

use crate::engine::{recover, run_index};

/// Recovers the named ledger (or run folder), or every unfinished run under `--out` and in
/// the state directory's run index.
/// Exit 0 when nothing is left injected, 4 when something could not be reverted.
pub async fn run(args: &RecoverArgs) -> i32 {
    let ledgers = match &args.ledger {
        // A run folder names its ledger: the folder is what people copy from the output.
        Some(l) if l.is_dir() => vec![l.join("ledger.jsonl")],
        Some(l) => vec![l.clone()],
        None => {
            let under_out = recover::find_pending(&args.out);
            let indexed = recover::find_pending_indexed();
            let state = run_index::state_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "(no state directory: set XDG_STATE_HOME or HOME)".into());
            // One run may be in both lists: compare folders by their canonical paths.
            let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            let mut all = under_out.clone();
            for l in &indexed {
                if !all.iter().any(|x| canon(x) == canon(l)) {
                    all.push(l.clone());
                }
            }
            let from_index = all.len() - under_out.len();
            if all.is_empty() {
                println!(
                    "nothing to recover: no unfinished run under {} or in the run index of {state}",
                    args.out.display()
                );
                return 0;
            }
            println!(
                "found {} unfinished run(s): {} under {}, {} more in the run index of {state}",
                all.len(),
                under_out.len(),
                args.out.display(),
                from_index
            );
            all
        }
    };
    let mut code = 0;
    for l in ledgers {
        match recover::recover_ledger(&l, args.force).await {
            Ok(r) if r.skipped_live => {
                eprintln!(
                    "{}: its runner is still running; stop it first or pass --force",
                    l.display()
                );
                code = 4;
            }
            Ok(r) => {
                if r.failed.is_empty() && r.unreadable.is_empty() {
                    if let Some(dir) = l.parent() {
                        run_index::forget_dir(dir);
                    }
                }
                if r.reverted.is_empty() && r.failed.is_empty() && r.unreadable.is_empty() {
                    println!("{}: nothing pending", l.display());
                }
                for x in &r.reverted {
                    println!("{}: reverted {x}", l.display());
                }
                for x in &r.failed {
                    eprintln!("{}: FAILED to revert {x}", l.display());
                    code = 4;
                }
                for u in &r.unreadable {
                    eprintln!(
                        "{}:{}: not a ledger record ({}); whatever it named was not reverted: check the target by hand, then delete the line",
                        l.display(),
                        u.line,
                        u.error
                    );
                    code = 4;
                }
            }
            Err(e) => {
                eprintln!("{}: {e:#}", l.display());
                code = 4;
            }
        }
    }
    code
}
