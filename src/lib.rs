//! gameday: a chaos-engineering gameday runner.
//!
//! The flow, and the folders that hold it: a [`scenario`] (YAML) is parsed and validated into
//! a plan; the [`engine`] runs its timeline, injecting faults into [`targets`] through a
//! write-ahead ledger and reverting them on every way out; the [`load`] generator drives the
//! system all along and measures what users would feel; the [`report`] says what happened.
//! [`observe`] holds the runner's own logs, progress and metrics.

pub mod report;
pub mod targets;
