//! Targets: the systems gameday injects faults into, and the one contract every fault kind
//! follows so that the engine, the ledger and `gameday recover` treat them all alike.
//!
//! The life of one injection is fixed by the engine (see `engine::runner`):
//!
//! 1. [`Fault::resolve`] (read-only) says what the fault would hit now: `plan` stops here.
//! 2. [`Fault::prepare`] (read-only) resolves again and captures everything needed to undo the
//!    fault (an original ConfigMap, the instances that were running...) into a [`Prepared`].
//! 3. The engine appends the [`Prepared`] record to the ledger and fsyncs it.
//! 4. [`Fault::inject`] acts on the target.
//! 5. [`Target::revert`] undoes it from the ledger record alone, so that a fresh process
//!    (`gameday recover`) can undo what a killed runner left. Revert is idempotent: reverting
//!    something that was never injected, or was already reverted, succeeds.
//!
//! One target kind per folder (`local/`, `kubernetes/`, `aws/`), one fault kind per file.

use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod aws;
pub mod kubernetes;
pub mod local;

/// The undo record of one injection; it belongs to the ledger, which keeps it first.
pub use crate::ledger::Prepared;

/// What a fault would hit now, for `plan` and for blast-radius checks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resolution {
    /// The objects that would be hit now.
    pub targets: Vec<String>,
    /// How many objects matched the selector before the mode (one, N, percent) picked.
    pub eligible: usize,
    /// The blast-radius cap that applies, if any.
    pub cap: Option<usize>,
    /// Anything a person should know before running (protected objects skipped, ...).
    pub notes: Vec<String>,
}

/// A finding of a read-only preflight check (`plan`): permissions, budgets, overlaps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// `error` stops the run before anything is injected; `warning` is printed.
    pub severity: Severity,
    /// What was checked and what was found, in a sentence a person can act on.
    pub message: String,
}

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The run would fail or do harm: `run` refuses to start.
    Error,
    /// Worth knowing; the run may go on.
    Warning,
}

/// Errors from a target, carrying the object they are about.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target could not be reached at all (exit code 5 when it happens before any
    /// injection).
    #[error("target {target} is unreachable: {reason}")]
    Unreachable {
        /// Which target (`local`, `kubernetes`, `aws`).
        target: String,
        /// What failed, with the address or context.
        reason: String,
    },
    /// The scenario asks for something this target cannot do.
    #[error("{0}")]
    Invalid(String),
    /// Selection matched nothing, or less than the scenario requires.
    #[error("fault {fault}: {reason}")]
    Selection {
        /// The fault's name.
        fault: String,
        /// Why nothing (or too little) matched.
        reason: String,
    },
    /// An operation on one object failed.
    #[error("{action} {object}: {source:#}")]
    Op {
        /// What gameday tried (`delete pod`, `stop instance`).
        action: String,
        /// The object (`shop/web-1`, `i-0abc`).
        object: String,
        /// The underlying error.
        source: anyhow::Error,
    },
}

/// Everything the engine needs from one kind of target.
#[async_trait]
pub trait Target: Send + Sync {
    /// `local`, `kubernetes` or `aws`: the name used in scenarios and in the ledger.
    fn name(&self) -> &'static str;

    /// Prove the target answers before anything is injected. Read-only.
    async fn check_reachable(&self) -> Result<(), TargetError>;

    /// Start what the target owns for the run (the local fleet); no-op for remote targets.
    async fn start(&self) -> Result<(), TargetError> {
        Ok(())
    }

    /// Read-only preflight for `plan` and before `run`: permissions, budgets, overlaps.
    async fn preflight(&self, faults: &[&dyn Fault]) -> Result<Vec<Finding>, TargetError> {
        let _ = faults;
        Ok(Vec::new())
    }

    /// Undo one ledger record, idempotently, knowing only what the ledger holds.
    async fn revert(&self, kind: &str, undo: &serde_json::Value) -> Result<(), TargetError>;

    /// A description from which `gameday recover` rebuilds this target in a fresh process
    /// (kube context, AWS region and endpoint, the local state directory). Never secrets.
    fn ledger_config(&self) -> serde_json::Value;

    /// Release what the target owns (stop the local fleet). Called on every way out,
    /// after all faults are reverted.
    async fn shutdown(&self) -> Result<(), TargetError> {
        Ok(())
    }
}

/// One fault of a scenario, bound to its target.
#[async_trait]
pub trait Fault: Send + Sync {
    /// The fault kind as written in scenarios (`process_kill`, `pod_kill`, ...).
    fn kind(&self) -> &'static str;

    /// How this fault is delivered, when the kind alone does not say (a spot interruption
    /// through EC2 or AWS FIS): `plan`, the journal and the report show it beside the kind.
    fn detail(&self) -> Option<String> {
        None
    }

    /// What this fault would hit now. Read-only: `plan` calls only this.
    async fn resolve(&self) -> Result<Resolution, TargetError>;

    /// Resolve and capture everything needed to undo. Read-only. The result is written to
    /// the ledger and fsync'd before [`Fault::inject`] is called.
    async fn prepare(&self) -> Result<Prepared, TargetError>;

    /// Act on the target. `deadline` is when the fault must end at the latest: targets that
    /// can expire a fault on their own (a netem sidecar, an FIS experiment) use it, so a
    /// fault does not outlive a runner that died.
    async fn inject(&self, prepared: &Prepared, deadline: SystemTime) -> Result<(), TargetError>;
}

/// Whether hitting `hit` more objects keeps a fault within its blast-radius cap when `down`
/// of the same set are already out (a previous round of `every:` still restarting, a
/// concurrent fault, a crash loop, a node not ready). Every target's cap bounds how many
/// are out *at once*, not how many one fault hits: counting only the new hits let repeated
/// or concurrent faults take everything down "within cap". `Err` is the number that would
/// be out.
pub fn within_cap(down: usize, hit: usize, cap: usize) -> Result<(), usize> {
    match down + hit {
        out if out > cap => Err(out),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::within_cap;

    /// Regression (issue #13): caps compared only the hits about to be made, so with one of
    /// three replicas already down a second kill passed a cap of one.
    #[test]
    fn the_cap_counts_what_is_already_down() {
        assert_eq!(within_cap(0, 1, 1), Ok(()));
        assert_eq!(within_cap(1, 1, 1), Err(2), "one down + one more > cap 1");
        assert_eq!(within_cap(1, 0, 1), Ok(()));
        assert_eq!(within_cap(1, 1, 2), Ok(()));
    }
}
