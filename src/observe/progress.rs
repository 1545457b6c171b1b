//! The live progress line of a run, for people at a terminal: phase, time left, active faults,
//! and the last second of load. Hidden automatically when stderr is not a terminal (CI logs
//! keep the structured records instead).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

/// What the progress line shows, updated by the engine.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// The current phase.
    pub phase: String,
    /// How many faults are injected now.
    pub active_faults: usize,
    /// The last second of load, live: outcomes/s, p99 ms (requests still waiting counted at
    /// their wait so far), failed, still pending.
    pub last_window: Option<(f64, f64, u64, u64)>,
}

/// Shared status.
pub type SharedStatus = Arc<Mutex<Status>>;

/// Draws the progress line until `cancel`; `total` is the planned length of the run.
pub fn spawn(
    total: Duration,
    status: SharedStatus,
    enabled: bool,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let pb = ProgressBar::with_draw_target(Some(total.as_millis() as u64), target);
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let t0 = Instant::now();
        loop {
            let s = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let left = total.saturating_sub(t0.elapsed()).as_secs();
            let load = s
                .last_window
                .map(|(rps, p99, err, pending)| {
                    let waiting = if pending > 0 {
                        format!(" waiting {pending}")
                    } else {
                        String::new()
                    };
                    format!(" | {rps:.0} req/s p99 {p99:.1} ms errors {err}{waiting}")
                })
                .unwrap_or_default();
            pb.set_message(format!(
                "phase {} | {left}s left | {} fault(s) active{load}",
                s.phase, s.active_faults
            ));
            pb.set_position(t0.elapsed().as_millis() as u64);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        pb.finish_and_clear();
    })
}
