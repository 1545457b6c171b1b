//! One module per subcommand: each takes its parsed arguments and returns the exit code.

pub mod plan;
pub mod recover;
pub mod run;
pub mod validate;

/// Exit code for invalid input or usage.
pub const EXIT_INVALID: i32 = 2;
