//! The engine: runs a scenario's timeline against its targets, safely.

pub mod ledger;
