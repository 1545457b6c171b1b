//! `gameday recover`: revert what killed runs left behind.

use crate::cli::RecoverArgs;
use crate::engine::recover;

/// Recovers the named ledger, or every ledger under `--out` with pending injections.
/// Exit 0 when nothing is left injected, 4 when something could not be reverted.
pub async fn run(args: &RecoverArgs) -> i32 {
    let ledgers = match &args.ledger {
        // A run folder names its ledger: the folder is what people copy from the output.
        Some(l) if l.is_dir() => vec![l.join("ledger.jsonl")],
        Some(l) => vec![l.clone()],
        None => recover::find_pending(&args.out),
    };
    if ledgers.is_empty() {
        println!("nothing to recover under {}", args.out.display());
        return 0;
    }
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
