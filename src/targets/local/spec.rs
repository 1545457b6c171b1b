//! Scenario parameters of the sandbox's network, DNS and spot faults, as written in YAML, and
//! their checks: what `validate` reports and what the faults turn into proxy toxics, DNS
//! rules and interruption schedules.
//!
//! Durations use the scenario's [`Dur`], so a bad one is reported with its line and column
//! while the file is read.

use std::net::Ipv4Addr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::dns::{DnsAction, DnsRule};
use super::proxy::{LinkFaults, Toxics};
use super::spot::SpotAction;
use crate::duration::Dur;

/// The sandbox's fault kinds with their parameters: what [`super::LocalSandbox::fault`]
/// builds a fault from. The scenario maps its entries onto it; this module imports nothing
/// from the scenario or the engine.
#[derive(Debug, Clone)]
pub enum LocalFaultSpec {
    /// `process_kill`.
    ProcessKill(ProcessKillSpec),
    /// `network`.
    Network(NetworkSpec),
    /// `dns`.
    Dns(DnsSpec),
    /// `spot_interruption` without `select:`.
    SpotInterruption(SpotSpec),
}

/// `process_kill: { service: backend, count: 1, signal: SIGKILL }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessKillSpec {
    /// The service whose replicas are killed.
    pub service: String,
    /// How many replicas (default 1). Exclusive with `percent`.
    #[serde(default)]
    pub count: Option<u32>,
    /// Which share of the replicas, in percent (rounded up). Exclusive with `count`.
    #[serde(default)]
    pub percent: Option<f64>,
    /// `SIGKILL` (default: a crash) or `SIGTERM` (a graceful stop).
    #[serde(default)]
    pub signal: KillSignal,
}

/// The signal a kill sends.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum KillSignal {
    /// Immediate death, no cleanup: a crash or an OOM kill.
    #[default]
    #[serde(rename = "SIGKILL")]
    Sigkill,
    /// A polite stop: the process may drain.
    #[serde(rename = "SIGTERM")]
    Sigterm,
}

impl KillSignal {
    pub(super) fn raw(self) -> i32 {
        match self {
            KillSignal::Sigkill => libc::SIGKILL,
            KillSignal::Sigterm => libc::SIGTERM,
        }
    }
}

impl ProcessKillSpec {
    /// How many of `replicas` this kill hits.
    pub fn victims(&self, replicas: usize) -> usize {
        let n = match (self.count, self.percent) {
            (_, Some(p)) => ((replicas as f64) * p / 100.0).ceil() as usize,
            (Some(c), None) => c as usize,
            (None, None) => 1,
        };
        n.min(replicas)
    }
}

/// Errors in fault parameters, naming the field and the value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// A number is outside its range.
    #[error("{field}: {value} is out of range, expected {range}")]
    Range {
        /// The field.
        field: &'static str,
        /// The value found.
        value: f64,
        /// The range allowed, in words.
        range: &'static str,
    },
    /// The fault would do nothing.
    #[error("{0}")]
    Empty(String),
    /// Another check failed.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

fn opt_dur(d: &Option<Dur>) -> Duration {
    d.map(Dur::get).unwrap_or_default()
}

fn check_range(
    value: f64,
    field: &'static str,
    lo: f64,
    hi: f64,
    range: &'static str,
) -> Result<(), SpecError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(SpecError::Range {
            field,
            value,
            range,
        })
    }
}

fn hundred() -> f64 {
    100.0
}

fn one() -> f64 {
    1.0
}

/// Which way of a link a `network` fault hits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LinkDirection {
    /// Both requests and responses.
    #[default]
    Both,
    /// Client-to-service data (requests) only.
    Upstream,
    /// Service-to-client data (responses) only.
    Downstream,
}

/// `network`: toxics on the link into a fleet service (its service address, served by
/// gameday's proxy), toxiproxy-style. Set at least one toxic.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct NetworkSpec {
    /// The fleet service whose incoming link is hit (every client of it feels the fault,
    /// including the load when it is the entry point).
    pub service: String,
    /// Delay added to each chunk of data (`200ms`), in each direction hit: with
    /// `direction: both` a request/response round trip gets it twice.
    #[serde(default)]
    pub latency: Option<Dur>,
    /// Random spread around the latency, plus or minus (`50ms`).
    #[serde(default)]
    pub jitter: Option<Dur>,
    /// 0 to 1: how much each delay follows the previous one (netem's correlation).
    #[serde(default)]
    pub correlation: Option<f64>,
    /// 0 to 100: chance per chunk of data that the connection is dropped.
    #[serde(default)]
    pub loss_percent: Option<f64>,
    /// Reset affected connections (TCP RST) at their next chunk of data.
    #[serde(default)]
    pub reset: bool,
    /// Accept data and never pass it on: the peer waits for an answer that never comes.
    #[serde(default)]
    pub blackhole: bool,
    /// Throughput cap in kilobits per second (1 kbps = 125 bytes/s).
    #[serde(default)]
    pub bandwidth_kbps: Option<u64>,
    /// Delay before a close is passed on (`5s`).
    #[serde(default)]
    pub slow_close: Option<Dur>,
    /// Which way the toxics act: `both` (default), `upstream` (requests), `downstream`.
    #[serde(default)]
    pub direction: LinkDirection,
    /// 0 to 100: the share of connections affected (default 100).
    #[serde(default = "hundred")]
    pub percent: f64,
}

impl NetworkSpec {
    /// Check every field and build the toxics the proxy applies.
    pub fn link_faults(&self) -> Result<LinkFaults, SpecError> {
        let correlation = self.correlation.unwrap_or(0.0);
        check_range(correlation, "correlation", 0.0, 1.0, "0 to 1")?;
        let loss = self.loss_percent.unwrap_or(0.0);
        check_range(loss, "loss_percent", 0.0, 100.0, "0 to 100")?;
        check_range(self.percent, "percent", 0.0, 100.0, "0 to 100")?;
        if self.service.trim().is_empty() {
            return Err(SpecError::Invalid {
                field: "service",
                message: "name the fleet service whose link is hit".into(),
            });
        }
        if self.bandwidth_kbps == Some(0) {
            return Err(SpecError::Invalid {
                field: "bandwidth_kbps",
                message: "0 would stop the link: use blackhole: true for that".into(),
            });
        }
        let toxics = Toxics {
            latency: opt_dur(&self.latency),
            jitter: opt_dur(&self.jitter),
            correlation,
            loss_percent: loss,
            reset: self.reset,
            blackhole: self.blackhole,
            bandwidth_bytes_per_sec: self.bandwidth_kbps.map(|k| k * 1000 / 8),
            slow_close: opt_dur(&self.slow_close),
        };
        if toxics.is_empty() {
            return Err(SpecError::Empty(format!(
                "network fault on {} sets no toxic: set latency, loss_percent, reset, blackhole, bandwidth_kbps or slow_close",
                self.service
            )));
        }
        let (upstream, downstream) = match self.direction {
            LinkDirection::Both => (toxics.clone(), toxics),
            LinkDirection::Upstream => (toxics, Toxics::default()),
            LinkDirection::Downstream => (Toxics::default(), toxics),
        };
        Ok(LinkFaults {
            upstream,
            downstream,
            percent: self.percent,
        })
    }
}

/// What a `dns` fault answers to matching queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DnsFaultAction {
    /// The name does not exist.
    Nxdomain,
    /// The server failed.
    Servfail,
    /// The server refuses to answer.
    Refused,
    /// No answer: the client waits out its own timeout.
    Timeout,
    /// A valid answer with a wrong address (`address`, default 127.0.0.2, where nothing
    /// listens).
    WrongAddress,
}

/// The address a `wrong_address` answer gives by default: loopback, so nothing leaves the
/// machine, and not 127.0.0.1, where the fleet's services listen.
pub const DEFAULT_WRONG_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// `dns`: answers from gameday's DNS server (which the fleet resolves through) for the names
/// matching `names`; other names resolve normally.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DnsSpec {
    /// Glob patterns of the names hit (`backend.*`, `*.gameday.local`), case-insensitive.
    pub names: Vec<String>,
    /// `nxdomain`, `servfail`, `refused`, `timeout` or `wrong_address`.
    pub action: DnsFaultAction,
    /// 0 to 1: the chance that a matching query is hit (default 1).
    #[serde(default = "one")]
    pub probability: f64,
    /// For `wrong_address`: the address answered; must be loopback (127.0.0.0/8) so that no
    /// traffic leaves the machine. Default 127.0.0.2.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
}

impl DnsSpec {
    /// Check every field and build the rule the DNS server applies.
    pub fn rule(&self) -> Result<DnsRule, SpecError> {
        if self.names.is_empty() {
            return Err(SpecError::Invalid {
                field: "names",
                message: "give at least one name pattern, like backend.*".into(),
            });
        }
        for pattern in &self.names {
            super::dns::check_pattern(pattern).map_err(|e| SpecError::Invalid {
                field: "names",
                message: e.to_string(),
            })?;
        }
        check_range(self.probability, "probability", 0.0, 1.0, "0 to 1")?;
        if self.address.is_some() && self.action != DnsFaultAction::WrongAddress {
            return Err(SpecError::Invalid {
                field: "address",
                message: "only wrong_address uses an address: remove it or change the action"
                    .into(),
            });
        }
        let action = match self.action {
            DnsFaultAction::Nxdomain => DnsAction::Nxdomain,
            DnsFaultAction::Servfail => DnsAction::Servfail,
            DnsFaultAction::Refused => DnsAction::Refused,
            DnsFaultAction::Timeout => DnsAction::Timeout,
            DnsFaultAction::WrongAddress => {
                let ip = self.address.unwrap_or(DEFAULT_WRONG_ADDRESS);
                if !super::dns::is_sandbox_address(ip.into()) {
                    return Err(SpecError::Invalid {
                        field: "address",
                        message: format!(
                            "{ip} is not a loopback address: the sandbox only hands out 127.0.0.0/8 so no traffic leaves the machine"
                        ),
                    });
                }
                DnsAction::WrongAddress(ip)
            }
        };
        Ok(DnsRule {
            names: self.names.clone(),
            action,
            probability: self.probability,
        })
    }
}

/// Which sandbox instances a `spot_interruption` hits: a count (picked at random among the
/// instances not already noticed) or names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum InstanceSelector {
    /// This many instances, picked at random.
    Count(usize),
    /// These instances, by name.
    Names(Vec<String>),
}

fn default_instances() -> InstanceSelector {
    InstanceSelector::Count(1)
}

fn default_notice() -> Dur {
    Dur::from_secs(120)
}

/// `spot_interruption`: EC2's two-minute warning, on a laptop. The instance's metadata
/// endpoint serves the notice, and after `notice` its processes are terminated; the fleet
/// supervisor may bring replacements up. Irreversible.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SpotSpec {
    /// Only instances running this service's replicas (default: any instance).
    #[serde(default)]
    pub service: Option<String>,
    /// How many instances (a number, default 1) or which ones (a list of names).
    #[serde(default = "default_instances")]
    pub instances: InstanceSelector,
    /// Time between the notice and the termination (default `120s`, as on EC2).
    #[serde(default = "default_notice")]
    pub notice: Dur,
    /// `terminate` (default), `stop` or `hibernate`: what the notice announces.
    #[serde(default)]
    pub action: SpotAction,
}

impl SpotSpec {
    /// Check the fields; returns the notice period.
    pub fn notice_period(&self) -> Result<Duration, SpecError> {
        if let InstanceSelector::Count(0) = self.instances {
            return Err(SpecError::Invalid {
                field: "instances",
                message: "0 instances would interrupt nothing: give 1 or more, or names".into(),
            });
        }
        if let InstanceSelector::Names(names) = &self.instances {
            if names.is_empty() {
                return Err(SpecError::Invalid {
                    field: "instances",
                    message: "the list of instance names is empty".into(),
                });
            }
        }
        if self.notice.get().is_zero() {
            return Err(SpecError::Invalid {
                field: "notice",
                message: "a zero notice is a plain kill: use process_kill, or give e.g. 10s".into(),
            });
        }
        Ok(self.notice.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(yaml: &str) -> NetworkSpec {
        serde_saphyr::from_str(yaml).expect("parses")
    }

    #[test]
    fn latency_on_upstream_only_leaves_downstream_clean() {
        let spec = network(
            "service: backend\nlatency: 200ms\njitter: 50ms\ncorrelation: 0.5\ndirection: upstream\npercent: 50\n",
        );
        let lf = spec.link_faults().unwrap();
        assert_eq!(lf.upstream.latency, Duration::from_millis(200));
        assert_eq!(lf.upstream.jitter, Duration::from_millis(50));
        assert!(lf.downstream.is_empty());
        assert_eq!(lf.percent, 50.0);
    }

    #[test]
    fn a_network_fault_without_toxic_is_refused() {
        let err = network("service: backend\n").link_faults().unwrap_err();
        assert!(matches!(err, SpecError::Empty(_)), "{err}");
    }

    #[test]
    fn out_of_range_and_bad_durations_name_their_field() {
        let err = network("service: b\nloss_percent: 140\n")
            .link_faults()
            .unwrap_err();
        assert!(err.to_string().starts_with("loss_percent:"), "{err}");
        let bad: Result<NetworkSpec, _> = serde_saphyr::from_str("service: b\nlatency: soon\n");
        assert!(bad.is_err());
    }

    #[test]
    fn unknown_network_keys_are_rejected() {
        let r: Result<NetworkSpec, _> = serde_saphyr::from_str("service: b\nlatncy: 1s\n");
        assert!(r.is_err());
    }

    #[test]
    fn wrong_address_must_stay_on_loopback() {
        let spec: DnsSpec = serde_saphyr::from_str(
            "names: [backend.*]\naction: wrong_address\naddress: 10.0.0.1\n",
        )
        .unwrap();
        assert!(spec.rule().unwrap_err().to_string().contains("loopback"));
        let spec: DnsSpec =
            serde_saphyr::from_str("names: [backend.*]\naction: wrong_address\n").unwrap();
        assert_eq!(
            spec.rule().unwrap().action,
            DnsAction::WrongAddress(DEFAULT_WRONG_ADDRESS)
        );
    }

    #[test]
    fn spot_instances_take_a_count_or_names() {
        let s: SpotSpec = serde_saphyr::from_str("instances: 2\nnotice: 5s\n").unwrap();
        assert_eq!(s.instances, InstanceSelector::Count(2));
        assert_eq!(s.notice_period().unwrap(), Duration::from_secs(5));
        let s: SpotSpec = serde_saphyr::from_str("instances: [backend-a]\n").unwrap();
        assert_eq!(
            s.instances,
            InstanceSelector::Names(vec!["backend-a".into()])
        );
        assert_eq!(s.notice_period().unwrap(), Duration::from_secs(120));
    }
}
