//! What happened during a run, in order, on the run's clock: the raw material of the
//! journal and the report.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::ledger::now_rfc3339;

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

/// The run's event log, shared by the engine's tasks.
#[derive(Debug, Clone)]
pub struct EventLog {
    t0: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl EventLog {
    /// A log whose clock starts at `t0`.
    pub fn new(t0: Instant) -> Self {
        EventLog {
            t0,
            events: Arc::default(),
        }
    }

    /// Seconds since the run started.
    pub fn now_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Records an event, and logs it.
    pub fn push(
        &self,
        kind: EventKind,
        phase: Option<&str>,
        fault: Option<(&str, &str)>,
        targets: Vec<String>,
        irreversible: bool,
        message: String,
    ) {
        let e = Event {
            t_s: self.now_s(),
            at: now_rfc3339(),
            kind,
            phase: phase.map(str::to_string),
            fault: fault.map(|f| f.0.to_string()),
            fault_kind: fault.map(|f| f.1.to_string()),
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
