//! One revert, retried: the engine's tail, a fault's own end and `gameday recover` all undo
//! an injection through [`with_retries`].
//!
//! Reverts are idempotent by contract (`Target::revert`), so trying again is always safe,
//! and a single try was not enough: one 409 on the conditional CoreDNS restore, one 5xx from
//! an API server under load, left DNS broken or a node cordoned until a person acted.
//! Attempts back off exponentially inside one bounded budget per revert, so a revert that
//! cannot succeed still ends (the ledger keeps it for `gameday recover`). Refusals that no
//! retry can change (an invalid record, an object someone else rewrote, a 403/404 from the
//! API) fail at once.

use std::time::{Duration, Instant};

use crate::targets::{Target, TargetError};

/// How one revert is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; doubled after each further one.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Everything (attempts and waits) for one revert must fit in this.
    pub budget: Duration,
}

/// The policy of runs and `recover`: up to a minute per revert (the single try's old
/// timeout), first retry after 200 ms, never more than 5 s between tries, which rides out a
/// control-plane restart or an optimistic-concurrency conflict.
pub const DEFAULT: RetryPolicy = RetryPolicy {
    first_backoff: Duration::from_millis(200),
    max_backoff: Duration::from_secs(5),
    budget: Duration::from_secs(60),
};

/// What a revert came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `Ok`, or the last attempt's error (with how many attempts were made).
    pub result: Result<(), String>,
    /// Attempts made.
    pub attempts: u32,
}

/// Whether trying the same revert again may succeed.
pub fn retryable(e: &TargetError) -> bool {
    match e {
        TargetError::Invalid(_) | TargetError::Selection { .. } => false,
        TargetError::Unreachable { .. } => true,
        TargetError::Op { source, .. } => {
            // The API's answer decides when there is one: a conflict, throttling or a
            // server error may pass; a refusal (403, 404, 422...) will not.
            match source.chain().find_map(|c| c.downcast_ref::<kube::Error>()) {
                Some(kube::Error::Api(r)) => r.code == 409 || r.code == 429 || r.code >= 500,
                // Transport errors, timeouts, and errors of other targets' SDKs.
                _ => true,
            }
        }
    }
}

/// Reverts one ledger record through `target`, retrying as `policy` says.
pub async fn with_retries(
    target: &dyn Target,
    kind: &str,
    undo: &serde_json::Value,
    policy: RetryPolicy,
) -> Outcome {
    let end = Instant::now() + policy.budget;
    let mut backoff = policy.first_backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = end.saturating_duration_since(Instant::now());
        let err = match tokio::time::timeout(left, target.revert(kind, undo)).await {
            Ok(Ok(())) => {
                return Outcome {
                    result: Ok(()),
                    attempts,
                }
            }
            Ok(Err(e)) if !retryable(&e) => {
                return Outcome {
                    result: Err(format!("{e:#}")),
                    attempts,
                }
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => "the attempt was still running when the budget ran out".to_string(),
        };
        let wait = backoff.min(end.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            return Outcome {
                result: Err(format!(
                    "{err} (gave up after {attempts} attempt(s) in {:?})",
                    policy.budget
                )),
                attempts,
            };
        }
        tracing::warn!(attempt = attempts, error = %err, "revert failed; retrying in {wait:?}");
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}
