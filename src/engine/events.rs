//! What happened during a run, in order, on the run's clock: the raw material of the
//! journal and the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::ledger::now_rfc3339;

/// One thing that happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Wall-clock time (RFC 3339).
    pub at: String,
    /// What kind of thing.
    pub kind: EventKind,
    /// The phase it happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The fault it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The fault's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_kind: Option<String>,
    /// What was hit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// The fault cannot be undone.
    #[serde(default)]
    pub irreversible: bool,
    /// A sentence for people.
    pub message: String,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A phase began.
    PhaseStart,
    /// A phase ended.
    PhaseEnd,
    /// A fault was injected.
    Inject,
    /// A fault was reverted.
    Revert,
    /// A revert failed: the fault may still be active.
    RevertFailed,
    /// A stop condition fired.
    StopCondition,
    /// A signal arrived.
    Signal,
    /// Something went wrong.
    Error,
    /// Anything else worth a line.
    Note,
}

/// An event about to be recorded: its kind and message, and what it concerns where it
/// concerns something. Built with [`NewEvent::new`] and the setters, so that a call site
/// says only what applies (`.phase(..)`, `.fault(..)`, ...).
#[derive(Debug, Clone)]
pub struct NewEvent {
    kind: EventKind,
    message: String,
    phase: Option<String>,
    fault: Option<(String, String)>,
    targets: Vec<String>,
    irreversible: bool,
}

impl NewEvent {
    /// An event of `kind` saying `message`.
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        NewEvent {
            kind,
            message: message.into(),
            phase: None,
            fault: None,
            targets: Vec::new(),
            irreversible: false,
        }
    }

    /// In this phase.
    pub fn phase(self, phase: &str) -> Self {
        self.phase_opt(Some(phase))
    }

    /// In this phase, if any.
    pub fn phase_opt(mut self, phase: Option<&str>) -> Self {
        self.phase = phase.map(str::to_string);
        self
    }

    /// About this fault: its name and kind.
    pub fn fault(self, (name, kind): (&str, &str)) -> Self {
        self.fault_opt(Some((name, kind)))
    }

    /// About this fault, if any.
    pub fn fault_opt(mut self, fault: Option<(&str, &str)>) -> Self {
        self.fault = fault.map(|(n, k)| (n.to_string(), k.to_string()));
        self
    }

    /// On these targets.
    pub fn targets(mut self, targets: Vec<String>) -> Self {
        self.targets = targets;
        self
    }

    /// Whether what it did cannot be undone.
    pub fn irreversible(mut self, irreversible: bool) -> Self {
        self.irreversible = irreversible;
        self
    }
}

/// The run's event log, shared by the engine's tasks.
#[derive(Debug, Clone)]
pub struct EventLog {
    /// When the log was made.
    base: Instant,
    /// Nanoseconds from `base` to the clock's zero (see [`EventLog::rebase`]); shared by every
    /// clone, so that all of the run's tasks read one clock.
    zero_ns: Arc<AtomicU64>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl EventLog {
    /// A log whose clock starts at `t0`.
    pub fn new(t0: Instant) -> Self {
        EventLog {
            base: t0,
            zero_ns: Arc::default(),
            events: Arc::default(),
        }
    }

    /// Seconds since the clock's zero (negative before it).
    pub fn now_s(&self) -> f64 {
        self.base.elapsed().as_secs_f64() - self.zero_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// Moves the clock's zero to `t0` (at or after the log's start): the timeline starts
    /// once the targets are up, and what happened before it (preflight, starting the
    /// targets) keeps its place, at negative times.
    pub fn rebase(&self, t0: Instant) {
        let old = self.zero_ns.load(Ordering::Relaxed);
        let new = t0.saturating_duration_since(self.base).as_nanos() as u64;
        self.zero_ns.store(new, Ordering::Relaxed);
        let shift = (new as f64 - old as f64) / 1e9;
        for e in self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            e.t_s -= shift;
        }
    }

    /// A note for the run's log and report: not tied to a phase, a fault or a target.
    pub fn note(&self, message: String) {
        self.push(NewEvent::new(EventKind::Note, message));
    }

    /// Records an event, and logs it.
    pub fn push(&self, new: NewEvent) {
        let NewEvent {
            kind,
            message,
            phase,
            fault,
            targets,
            irreversible,
        } = new;
        let e = Event {
            t_s: self.now_s(),
            at: now_rfc3339(),
            kind,
            phase,
            fault: fault.as_ref().map(|f| f.0.clone()),
            fault_kind: fault.map(|f| f.1),
            targets,
            irreversible,
            message,
        };
        match kind {
            EventKind::Error | EventKind::RevertFailed => {
                tracing::error!(event = ?kind, phase = e.phase.as_deref(), fault = e.fault.as_deref(), targets = ?e.targets, "{}", e.message)
            }
            EventKind::StopCondition | EventKind::Signal => {
                tracing::warn!(event = ?kind, phase = e.phase.as_deref(), "{}", e.message)
            }
            _ => {
                tracing::info!(event = ?kind, phase = e.phase.as_deref(), fault = e.fault.as_deref(), targets = ?e.targets, "{}", e.message)
            }
        }
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    /// A copy of every event so far.
    pub fn snapshot(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_moves_the_zero_for_every_clone_and_keeps_earlier_events_before_it() {
        let log = EventLog::new(Instant::now());
        let clone = log.clone();
        log.note("targets up".into());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let zero = Instant::now();
        clone.rebase(zero);
        // Every clone reads the new clock: never more than the time elapsed since `zero`.
        let now = log.now_s();
        assert!(now >= 0.0 && now <= zero.elapsed().as_secs_f64(), "{now}");
        // The event from before the zero is at least the 50 ms slept before it.
        let before = log.snapshot()[0].t_s;
        assert!(before <= -0.049, "{before}");
    }
}
