//! One module per subcommand: each takes its parsed arguments and returns the exit code.

pub mod plan;
pub mod playbook;
pub mod recover;
pub mod run;
pub mod validate;

/// Exit code for invalid input or usage.
pub const EXIT_INVALID: i32 = 2;

/// Exit code when something outside gameday cannot be reached or written (a target, the
/// run folder): nothing was done.
pub const EXIT_UNREACHABLE: i32 = 5;

/// Exit code when gameday itself cannot work (its async runtime or its signal handlers
/// cannot be set up): nothing was started. Distinct from 4, which only ever means "a revert
/// did not complete, run `gameday recover`".
pub const EXIT_INTERNAL: i32 = 6;
