//! Placeholder for the load generator's scenario types until the load branch lands; the
//! load branch replaces this file whole.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::scenario::duration::Dur;

/// The scenario's `load:` section.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// The URL to drive.
    pub url: String,
    /// Requests per second (open model); absent = closed model.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Connections.
    #[serde(default)]
    pub connections: Option<usize>,
    /// Request timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// A phase's own load.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseLoad {
    /// Requests per second in this phase.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Ramp to the new rate over this time.
    #[serde(default)]
    pub ramp: Option<Dur>,
}
