//! Fail points: the `fail` crate's named points where a test can make gameday's own code fail
//! the way a real target sometimes does (a revert refused for a while), so the paths that
//! exist for those moments are proven through a whole run of the real binary.
//!
//! Only debug builds (the tests' binary) read `GAMEDAY_FAILPOINTS`, in the crate's syntax
//! (`name=actions;...`, e.g. `local-revert=2*return(network)`). Release builds never
//! configure a point, so every point stays off: one uncontended lock read where it sits,
//! on paths that run a few times per gameday.
//!
//! Points:
//! - `local-revert`: the local target's revert of the fault kind named by the action's
//!   argument fails with a retryable error (every kind when there is none).
//! - `kube-revert`: the Kubernetes target's revert fails as if the API server had answered
//!   with the HTTP status in the argument (`409`, `503`; 503 when there is none), before
//!   anything is sent: `kube-revert=1*return(409)->1*return(503)` is a conflict, then an
//!   unavailable control plane, then the real revert.

/// The variable tests set.
pub const ENV: &str = "GAMEDAY_FAILPOINTS";

/// Configures the points named in [`ENV`] (debug builds only). A malformed value is an
/// error: a test that thinks it set a point must not pass because the point stayed off.
pub fn configure_from_env() -> Result<(), String> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(());
    };
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, actions) = part
            .split_once('=')
            .ok_or_else(|| format!("{ENV}: `{part}` is not name=actions"))?;
        fail::cfg(name.trim(), actions.trim()).map_err(|e| format!("{ENV}: `{part}`: {e}"))?;
    }
    Ok(())
}

/// Whether the point `name` fires now for `kind`: it is configured, its count not spent, and
/// its argument (if any) is `kind`.
pub fn fires(name: &str, kind: &str) -> bool {
    fired(name).is_some_and(|arg| arg.is_none_or(|a| a == kind))
}

/// The point's argument when it fires now (`Some(None)`: fired without one).
pub fn fired(name: &str) -> Option<Option<String>> {
    fail::eval(name, |arg| arg)
}
