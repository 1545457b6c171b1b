//! Signals: the first SIGINT or SIGTERM asks the run to stop, which reverts every fault and
//! exits 3. Signals within [`GRACE`] of the first are copies, not a person insisting:
//! `timeout`, CI runners and supervisors signal the child *and* its process group, so one
//! Ctrl-C often arrives twice within a millisecond. They are noted and ignored, and the
//! revert goes on. Only a signal after [`GRACE`] is a deliberate "exit now": then the local
//! fleet (gameday's own child processes, in process groups of their own that no exit would
//! reach) is stopped first, and the message names what stays injected and the exact ledger
//! file that `gameday recover --ledger` takes. That exit is 3 when nothing was left
//! injected, 4 when something was.

use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};

use super::events::EventKind;
use super::runner::{Abort, ActiveSet};

/// How long after the first signal further signals count as copies of it. Long enough for
/// every copy a process-group signal or a wrapper's re-send produces, short enough that a
/// person who means "now" is not kept waiting.
pub const GRACE: Duration = Duration::from_secs(2);

/// Whether a signal at `now` forces an immediate exit, given the first one at `first`.
pub fn forces_exit(first: Instant, now: Instant) -> bool {
    now.saturating_duration_since(first) >= GRACE
}

/// Installs the handlers for one run. Must be called inside the runtime.
pub fn install(abort: Abort, active: ActiveSet) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut first: Option<Instant> = None;
        let mut noted_copy = false;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            let now = Instant::now();
            let Some(first) = first else {
                first = Some(now);
                eprintln!("gameday: {name} received: reverting every active fault, then exiting (send it again after {GRACE:?} to exit at once)");
                abort.trigger(EventKind::Signal, format!("{name} received: run aborted"));
                continue;
            };
            if !forces_exit(first, now) {
                if !noted_copy {
                    noted_copy = true;
                    eprintln!("gameday: {name} again within {GRACE:?} of the first (a copy sent to the process group?): still reverting");
                }
                continue;
            }
            forced_exit(name, &abort, &active).await;
        }
    });
    Ok(())
}

/// A deliberate second signal: stop the fleet, say what is left and where, exit.
async fn forced_exit(name: &str, abort: &Abort, active: &ActiveSet) -> ! {
    let left = active.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ledger = abort.ledger();
    if let Some(l) = &ledger {
        let stopped = super::recover::stop_fleet(l).await;
        if stopped > 0 {
            eprintln!("gameday: second {name}: stopped {stopped} fleet process(es)");
        }
    }
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
    match &ledger {
        Some(l) => eprintln!(
            "gameday: the ledger keeps them: run `gameday recover --ledger {}`",
            l.display()
        ),
        None => eprintln!("gameday: the run had not started: nothing to recover"),
    }
    std::process::exit(if left.is_empty() { 3 } else { 4 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_within_the_grace_never_force_an_exit_a_later_signal_does() {
        let t = Instant::now();
        assert!(!forces_exit(t, t));
        assert!(!forces_exit(t, t + Duration::from_micros(500)));
        assert!(!forces_exit(t, t + GRACE - Duration::from_millis(1)));
        assert!(forces_exit(t, t + GRACE));
    }
}
