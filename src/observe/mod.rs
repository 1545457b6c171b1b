//! The runner's own observability: logs for people (and JSON for machines), progress.

pub mod logging;
pub mod metrics;
pub mod progress;
