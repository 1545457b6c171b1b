//! The scenario's `target.local` section: the fleet of services gameday starts and
//! supervises, and the sandbox's blast-radius cap.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Dur;

/// The embedded local sandbox: real processes on this machine, supervised like a
/// ReplicaSet would (restart with backoff), stopped on every way out.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalTarget {
    /// The services of the fleet, started in order.
    pub services: Vec<ServiceSpec>,
    /// The largest share of a service's replicas one fault may hit, in percent (default 50).
    /// Raise it on purpose to kill every replica.
    #[serde(default = "default_max_percent")]
    pub max_percent: f64,
    /// How long the fleet may take to become healthy before the run gives up (default 30s).
    #[serde(default = "default_startup")]
    pub startup_timeout: Dur,
}

fn default_max_percent() -> f64 {
    50.0
}

fn default_startup() -> Dur {
    Dur::from_secs(30)
}

/// One service of the local fleet.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Unique name; also its DNS name in the sandbox (`<name>.gameday.local`).
    pub name: String,
    /// The program and its arguments. A first word `gameday` means this very binary, so the
    /// built-in demo service needs no install.
    pub command: Vec<String>,
    /// How many replicas run (default 1).
    #[serde(default = "one")]
    pub replicas: u32,
    /// The service address port on 127.0.0.1, served by gameday's proxy in front of the
    /// replicas. Each replica listens on its own free port, given in `PORT`.
    #[serde(default)]
    pub port: Option<u16>,
    /// HTTP path answering 2xx when a replica is ready (e.g. `/healthz`). Without it a
    /// replica is ready once its process runs.
    #[serde(default)]
    pub health: Option<String>,
    /// Replicas per spot "instance" (default 1): a spot interruption takes a whole instance.
    #[serde(default = "one")]
    pub instance_size: u32,
    /// Extra environment for every replica.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// First restart delay after a replica dies; doubles up to `max_backoff` (default 250ms).
    #[serde(default = "default_backoff")]
    pub backoff: Dur,
    /// Longest restart delay (default 5s).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
}

fn one() -> u32 {
    1
}

fn default_backoff() -> Dur {
    Dur::from_millis(250)
}

fn default_max_backoff() -> Dur {
    Dur::from_secs(5)
}
