//! The resolved timeline: a validated scenario laid out in absolute time, phase by phase and
//! fault by fault. Pure: building a plan touches nothing, which is what lets `gameday plan`
//! and `gameday run --dry-run` promise no side effects.

use std::time::Duration;

use serde::Serialize;

use crate::load::PhaseLoad;
use crate::scenario::model::{FaultEntry, PhaseRole, Scenario, Schedule};
use crate::scenario::validate::fault_label;

/// One phase, placed on the run's clock.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedPhase {
    /// The phase's name.
    pub name: String,
    /// What it is for (given, or guessed from its name and faults).
    pub role: PhaseRole,
    /// Offset from the run's start.
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// Its own load, if any.
    pub load: Option<PhaseLoad>,
    /// Its faults.
    pub faults: Vec<PlannedFault>,
}

impl PlannedPhase {
    /// Offset from the run's start where the phase ends.
    pub fn end(&self) -> Duration {
        self.start + self.duration
    }
}

/// One fault, placed on the run's clock.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFault {
    /// Unique name (given, or `kind#phase.index`).
    pub name: String,
    /// The fault kind.
    pub kind: String,
    /// The target it goes to.
    pub target: String,
    /// The phase it belongs to.
    pub phase: String,
    /// Offset from the run's start of its (first) injection.
    pub start: Duration,
    /// Offset from the run's start where it is reverted (for instant faults without
    /// `every`, equal to `start`).
    pub end: Duration,
    /// Repeat interval.
    pub every: Option<Duration>,
    /// Whether it lasts until reverted.
    pub durable: bool,
    /// The scenario entry.
    #[serde(skip)]
    pub entry: FaultEntry,
}

/// The whole resolved timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Phases in order.
    pub phases: Vec<PlannedPhase>,
    /// Sum of the phase durations.
    pub total: Duration,
}

impl Plan {
    /// Lays out a validated scenario.
    pub fn new(s: &Scenario) -> Plan {
        let mut phases = Vec::new();
        let mut t = Duration::ZERO;
        let configured = s.target.configured();
        for (pi, ph) in s.phases.iter().enumerate() {
            let mut faults = Vec::new();
            let mut serial = Duration::ZERO;
            for (fi, f) in ph.faults.iter().enumerate() {
                let kind = f.kinds().first().copied().unwrap_or("unknown").to_string();
                let durable = f.is_durable() || f.every.is_some();
                let rel_start = if ph.schedule == Schedule::Serial {
                    serial + f.at.get()
                } else {
                    f.at.get()
                };
                let len = match f.duration {
                    Some(d) => d.get(),
                    None if durable => ph.duration.get().saturating_sub(rel_start),
                    None => Duration::ZERO,
                }
                .max(f.min_length());
                serial = rel_start + len;
                let target = f.target.clone().unwrap_or_else(|| {
                    let t = f.target_of(&kind);
                    if configured.contains(&t) {
                        t.to_string()
                    } else {
                        configured.first().copied().unwrap_or(t).to_string()
                    }
                });
                faults.push(PlannedFault {
                    name: fault_label(f, pi, fi),
                    kind,
                    target,
                    phase: ph.name.clone(),
                    start: t + rel_start,
                    end: t + rel_start + len,
                    every: f.every.map(|d| d.get()),
                    durable,
                    entry: f.clone(),
                });
            }
            let role = ph
                .role
                .unwrap_or_else(|| guess_role(&ph.name, !ph.faults.is_empty(), pi, s.phases.len()));
            phases.push(PlannedPhase {
                name: ph.name.clone(),
                role,
                start: t,
                duration: ph.duration.get(),
                load: ph.load.clone(),
                faults,
            });
            t += ph.duration.get();
        }
        Plan { phases, total: t }
    }

    /// Every fault of every phase, in timeline order.
    pub fn faults(&self) -> impl Iterator<Item = &PlannedFault> {
        self.phases.iter().flat_map(|p| p.faults.iter())
    }

    /// The phase running at offset `t`.
    pub fn phase_at(&self, t: Duration) -> Option<&PlannedPhase> {
        self.phases.iter().find(|p| p.start <= t && t < p.end())
    }
}

/// Baseline before any fault, chaos with faults, recovery after them; names win.
fn guess_role(name: &str, has_faults: bool, index: usize, count: usize) -> PhaseRole {
    let n = name.to_ascii_lowercase();
    if n.contains("baseline") || n.contains("steady") || n.contains("warm") {
        PhaseRole::Baseline
    } else if n.contains("recover") || n.contains("cool") || n.contains("after") {
        PhaseRole::Recovery
    } else if has_faults {
        PhaseRole::Chaos
    } else if index == 0 {
        PhaseRole::Baseline
    } else if index + 1 == count {
        PhaseRole::Recovery
    } else {
        PhaseRole::Chaos
    }
}
