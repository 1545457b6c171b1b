//! The engine: runs a scenario's timeline against its targets, safely.
//!
//! [`plan`] lays the timeline out in absolute time (pure); [`runner`] executes it with the
//! load and the stop conditions; [`ledger`] is the write-ahead record of every injection;
//! [`recover`] undoes what a killed run left, found under `--out` or through [`run_index`]; [`hypothesis`] judges the SLOs; [`revert`] retries one undo inside a bounded budget; [`signals`]
//! turns Ctrl-C into a clean abort; [`events`] is the run's own log; [`disk`] refuses a run
//! the free space under its folder cannot hold.

pub mod disk;
pub mod events;
pub mod hypothesis;
pub mod plan;
pub mod playbook;
pub mod probes;
pub mod recover;
pub mod revert;
pub mod run_index;
pub mod runner;
pub mod signals;
pub mod targets;
