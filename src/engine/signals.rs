//! Signals: the first SIGINT or SIGTERM asks the run to stop, which reverts every fault and
//! exits 3; a second one exits at once (code 4), naming what it leaves injected: the ledger
//! still holds it for `gameday recover`.

use tokio::signal::unix::{signal, SignalKind};

use super::events::EventKind;
use super::runner::{Abort, ActiveSet};

/// Installs the handlers for one run. Must be called inside the runtime.
pub fn install(abort: Abort, active: ActiveSet, ledger: std::path::PathBuf) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            seen += 1;
            if seen == 1 {
                eprintln!("gameday: {name} received: reverting every active fault, then exiting (send it again to exit at once)");
                abort.trigger(EventKind::Signal, format!("{name} received: run aborted"));
                continue;
            }
            let left = active.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if left.is_empty() {
                eprintln!("gameday: second {name}: exiting now; no fault was active");
            } else {
                eprintln!(
                    "gameday: second {name}: exiting now, leaving {} fault(s) injected:",
                    left.len()
                );
                for a in &left {
                    eprintln!(
                        "  - {} ({} on {}): {}",
                        a.name,
                        a.kind,
                        a.target,
                        a.prepared.targets.join(", ")
                    );
                }
            }
            eprintln!(
                "gameday: the ledger keeps them: run `gameday recover --ledger {}`",
                ledger.display()
            );
            std::process::exit(4);
        }
    });
    Ok(())
}
