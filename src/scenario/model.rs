//! The scenario file, as data: what a person writes in `scenarios/*.yaml`.
//!
//! Every struct denies unknown fields and documents each field: the docs become the JSON
//! Schema that `gameday schema` prints for editors, and the schema drives the structural
//! check that reports every unknown key with its line and column. No `#[serde(flatten)]`
//! anywhere: it would lose those locations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Dur;
use crate::load::{LoadSpec, PhaseLoad};
use crate::targets::aws::spec::{
    AwsFaultSpec, AwsTargetConfig, Ec2RebootSpec, Ec2StopSpec, Ec2TerminateSpec,
    InterruptionBehavior, InterruptionMethod, SpotInterruptionSpec,
};
use crate::targets::kubernetes::spec::{
    ContainerKillSpec, DnsFailureSpec, KubernetesConfig, NetworkLatencySpec, NodeDrainSpec,
    PodKillSpec, PodRestartsProbe, WorkloadReadyProbe,
};
use crate::targets::local::config::LocalTarget;
use crate::targets::local::spec::{
    DnsSpec, LocalFaultSpec, NetworkSpec, ProcessKillSpec, SpotSpec,
};

/// The only `apiVersion` this gameday reads.
pub const API_VERSION: &str = "gameday/v1";
/// The only `kind` this gameday reads.
pub const KIND: &str = "Gameday";

/// A gameday: target, load, steady-state hypothesis, stop conditions and a timeline of
/// phases with faults, plus what the report needs (action items, DR playbook).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Always `gameday/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `Gameday`.
    pub kind: String,
    /// Who runs this gameday and why.
    pub metadata: Metadata,
    /// The system the faults go into. `kubernetes` and `aws` may be combined.
    pub target: TargetSpec,
    /// The traffic that runs through every phase and measures what users would feel.
    #[serde(default)]
    pub load: Option<LoadSpec>,
    /// The steady state the system must keep: service-level objectives judged per phase.
    #[serde(default)]
    pub hypothesis: Hypothesis,
    /// Thresholds that abort the run (revert first, then report) when held for a while.
    #[serde(default)]
    pub stop_conditions: Vec<StopCondition>,
    /// The timeline, in order.
    pub phases: Vec<Phase>,
    /// Follow-ups to carry into the report, with owners.
    #[serde(default)]
    pub action_items: Vec<ActionItem>,
    /// Who takes part in the gameday (R-3: a team, not one person); `gameday run
    /// --participant NAME` adds more.
    #[serde(default)]
    pub participants: Vec<String>,
    /// The disaster-recovery playbook this gameday rehearses (manifesto R-4).
    #[serde(default)]
    pub playbook: Option<Playbook>,
    /// How much worse than the baseline a fault may make things for users before the report
    /// calls it a finding and drafts an action item, whatever the SLOs say. Defaults: +1
    /// percentage point of errors, 2x the baseline's p99.
    #[serde(default)]
    pub impact_tolerance: Option<ImpactTolerance>,
    /// Who owns what: a fault, service or target name to the team or person suggested as
    /// owner of the action items drafted from that fault's impact (looked up in that order).
    #[serde(default)]
    pub owners: std::collections::BTreeMap<String, String>,
}

/// `impact_tolerance: { error_rate_points: 1, p99_ratio: 2 }`: how far a fault may move what
/// users feel, against the baseline phase, before it is a finding.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactTolerance {
    /// Percentage points of errors over the baseline's error rate (default 1): 1 means a
    /// baseline of 0.2% may go to 1.2% over the fault's window.
    #[serde(default = "default_error_rate_points")]
    pub error_rate_points: f64,
    /// Multiple of the baseline's p99 (default 2): the fault's window may be this much
    /// slower at the 99th percentile.
    #[serde(default = "default_p99_ratio")]
    pub p99_ratio: f64,
}

impl Default for ImpactTolerance {
    fn default() -> Self {
        ImpactTolerance {
            error_rate_points: default_error_rate_points(),
            p99_ratio: default_p99_ratio(),
        }
    }
}

fn default_error_rate_points() -> f64 {
    1.0
}

fn default_p99_ratio() -> f64 {
    2.0
}

/// Who runs the gameday and why.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// A short name, used in report folder names: letters, digits, `-` and `_`.
    pub name: String,
    /// The team or person who owns the gameday.
    #[serde(default)]
    pub owner: Option<String>,
    /// What this gameday rehearses and why.
    #[serde(default)]
    pub description: Option<String>,
    /// Free tags for search and grouping.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Where faults go. At least one target must be set.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The embedded local sandbox: real processes that gameday starts and supervises.
    #[serde(default)]
    pub local: Option<LocalTarget>,
    /// A Kubernetes cluster, reached through a kubeconfig context the scenario names.
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
    /// AWS EC2 instances, reached with the standard AWS credential chain.
    #[serde(default)]
    pub aws: Option<AwsTargetConfig>,
}

impl TargetSpec {
    /// Names of the configured targets, in a fixed order.
    pub fn configured(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.local.is_some() {
            v.push("local");
        }
        if self.kubernetes.is_some() {
            v.push("kubernetes");
        }
        if self.aws.is_some() {
            v.push("aws");
        }
        v
    }
}

/// The steady-state hypothesis: what "fine" means, in numbers.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hypothesis {
    /// A sentence for the report ("checkout stays fast while a backend dies").
    #[serde(default)]
    pub description: Option<String>,
    /// The objectives. Each is judged per phase.
    #[serde(default)]
    pub slos: Vec<Slo>,
}

/// One service-level objective. Set exactly one of `latency`, `error_rate`, `availability`,
/// `recovery_time` (measured by the load), or `workload_ready`, `pod_restarts` (read from the
/// Kubernetes target every second).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// A name for the report and JUnit.
    pub name: String,
    /// A latency percentile must stay at or below a bound.
    #[serde(default)]
    pub latency: Option<LatencyObjective>,
    /// The share of failed requests must stay at or below a bound.
    #[serde(default)]
    pub error_rate: Option<PercentMax>,
    /// The share of successful requests must stay at or above a bound.
    #[serde(default)]
    pub availability: Option<PercentMin>,
    /// After each fault ends, the other objectives must hold again within this time.
    #[serde(default)]
    pub recovery_time: Option<RecoveryObjective>,
    /// Kubernetes: a Deployment or StatefulSet keeps at least `min_ready` ready replicas at
    /// every reading (once a second).
    #[serde(default)]
    pub workload_ready: Option<WorkloadReadyProbe>,
    /// Kubernetes: the selected pods' containers restart at most `max_restarts` times in
    /// all, counted from the start of the run.
    #[serde(default)]
    pub pod_restarts: Option<PodRestartsProbe>,
    /// Phases where this objective must hold; all phases when empty. Chaos phases often only
    /// carry a looser objective, or none.
    #[serde(default)]
    pub phases: Vec<String>,
}

/// `latency: { percentile: 99, max: 250ms }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyObjective {
    /// Which percentile: 50, 90, 99, 99.9 or 100 (max).
    pub percentile: f64,
    /// The bound, e.g. `250ms`.
    pub max: Dur,
}

/// `error_rate: { max_percent: 1 }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PercentMax {
    /// The highest acceptable share, in percent (0-100).
    pub max_percent: f64,
}

/// `availability: { min_percent: 99.5 }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PercentMin {
    /// The lowest acceptable share, in percent (0-100).
    pub min_percent: f64,
}

/// `recovery_time: { max: 20s, consecutive: 3 }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryObjective {
    /// The longest acceptable time from a fault's end to steady state.
    pub max: Dur,
    /// How many consecutive good seconds count as "recovered" (default
    /// [`DEFAULT_GOOD_SECONDS`], 3).
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
}

impl Slo {
    /// Whether the load measures this objective (every kind but the Kubernetes probes).
    pub fn is_load_measured(&self) -> bool {
        self.workload_ready.is_none() && self.pod_restarts.is_none()
    }
}

/// Consecutive good seconds that count as recovered, when the scenario does not say: the one
/// default the engine's verdict and the report's recovery table share.
pub const DEFAULT_GOOD_SECONDS: u32 = 3;

fn default_consecutive() -> u32 {
    DEFAULT_GOOD_SECONDS
}

/// Aborts the run when a per-second measure breaks its bound for `for` in a row. Set exactly
/// one of `latency`, `error_rate`, `availability`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopCondition {
    /// A name for logs and the report.
    pub name: String,
    /// Abort when this latency percentile stays above the bound.
    #[serde(default)]
    pub latency: Option<LatencyObjective>,
    /// Abort when the error rate stays above the bound.
    #[serde(default)]
    pub error_rate: Option<PercentMax>,
    /// Abort when availability stays below the bound.
    #[serde(default)]
    pub availability: Option<PercentMin>,
    /// How long the bound must be broken before the run aborts (default `5s`).
    #[serde(default = "default_for", rename = "for")]
    pub hold_for: Dur,
}

fn default_for() -> Dur {
    Dur::from_secs(5)
}

/// One phase of the timeline.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Unique name (`baseline`, `chaos`, `recovery`...).
    pub name: String,
    /// How long the phase lasts.
    pub duration: Dur,
    /// What the phase is for in the report: `baseline`, `chaos` or `recovery`. Guessed from
    /// the name and faults when absent.
    #[serde(default)]
    pub role: Option<PhaseRole>,
    /// `parallel` (default): each fault starts at its own `at`. `serial`: each fault starts
    /// when the previous one has ended, `at` being an extra delay.
    #[serde(default)]
    pub schedule: Schedule,
    /// A different load for this phase (rate, ramp).
    #[serde(default)]
    pub load: Option<PhaseLoad>,
    /// The faults of this phase.
    #[serde(default)]
    pub faults: Vec<FaultEntry>,
}

/// How the faults of a phase are laid out in time.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Each fault starts at its own offset.
    #[default]
    Parallel,
    /// One after another.
    Serial,
}

/// What a phase is for.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PhaseRole {
    /// Steady state before faults: the reference for "change from baseline".
    Baseline,
    /// Faults are active.
    Chaos,
    /// After faults: how fast the system comes back.
    Recovery,
}

/// One fault on the timeline. Set exactly one fault kind (`process_kill`, ...).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultEntry {
    /// A name for logs, the ledger and the report (default: the kind and its index).
    #[serde(default)]
    pub name: Option<String>,
    /// Which target it goes to; may be left out when only one target is configured.
    #[serde(default)]
    pub target: Option<String>,
    /// Start offset within the phase (default `0s`).
    #[serde(default)]
    pub at: Dur,
    /// How long the fault stays before it is reverted (default: until the phase ends).
    /// Instant faults (a kill) ignore it unless `every` repeats them.
    #[serde(default)]
    pub duration: Option<Dur>,
    /// Inject again every interval while the fault lasts (kills, for instance).
    #[serde(default)]
    pub every: Option<Dur>,
    /// Kill processes of a local service.
    #[serde(default)]
    pub process_kill: Option<ProcessKillSpec>,
    /// Toxics (latency, loss, reset, blackhole, bandwidth, slow close) on the link into a
    /// local service, through gameday's proxy.
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    /// Wrong answers (NXDOMAIN, SERVFAIL, REFUSED, timeout, wrong address) from the local
    /// sandbox's DNS server for name patterns.
    #[serde(default)]
    pub dns: Option<DnsSpec>,
    /// A spot interruption: a notice, then the instances are stopped or terminated. With
    /// `select:` it hits EC2 spot instances (target `aws`); without, the local sandbox's
    /// instances (target `local`).
    #[serde(default)]
    pub spot_interruption: Option<SpotInterruption>,
    /// Delete Kubernetes pods (their controllers replace them).
    #[serde(default)]
    pub pod_kill: Option<PodKillSpec>,
    /// Signal the main process of containers in Kubernetes pods.
    #[serde(default)]
    pub container_kill: Option<ContainerKillSpec>,
    /// Cordon Kubernetes nodes and evict their pods, honouring disruption budgets.
    #[serde(default)]
    pub node_drain: Option<NodeDrainSpec>,
    /// Delay or drop the traffic of Kubernetes pods (tc netem).
    #[serde(default)]
    pub network_latency: Option<NetworkLatencySpec>,
    /// Fail DNS names cluster-wide (CoreDNS) or for selected pods.
    #[serde(default)]
    pub dns_failure: Option<DnsFailureSpec>,
    /// Stop EC2 instances (a DR drill: a zone loses its machines); revert starts them.
    #[serde(default)]
    pub ec2_stop: Option<Ec2StopSpec>,
    /// Reboot EC2 instances; the reboot ends by itself.
    #[serde(default)]
    pub ec2_reboot: Option<Ec2RebootSpec>,
    /// Terminate EC2 instances. Irreversible: needs `acknowledge_irreversible: true`.
    #[serde(default)]
    pub ec2_terminate: Option<Ec2TerminateSpec>,
}

/// The two spot interruptions: EC2's (the entry has `select:`) and the local sandbox's.
/// One scenario key for both, as a person thinks of one fault; which target it goes to
/// follows from its fields, and `validate` checks that against the entry's `target:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SpotInterruption {
    /// EC2 spot instances chosen by `select:` (target `aws`).
    Aws(SpotInterruptionSpec),
    /// Local sandbox instances (target `local`).
    Local(SpotSpec),
}

impl SpotInterruption {
    /// The local sandbox's spot interruption, if this is one.
    pub fn local(&self) -> Option<&SpotSpec> {
        match self {
            SpotInterruption::Local(s) => Some(s),
            SpotInterruption::Aws(_) => None,
        }
    }

    /// EC2's spot interruption, if this is one.
    pub fn aws(&self) -> Option<&SpotInterruptionSpec> {
        match self {
            SpotInterruption::Aws(s) => Some(s),
            SpotInterruption::Local(_) => None,
        }
    }
}

/// A follow-up to carry into the report.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItem {
    /// What must change.
    pub title: String,
    /// Who owns it.
    #[serde(default)]
    pub owner: Option<String>,
    /// `p1`, `p2`... or free text.
    #[serde(default)]
    pub priority: Option<String>,
    /// When it is due (free text or a date).
    #[serde(default)]
    pub due: Option<String>,
}

/// A disaster-recovery playbook rehearsed by this gameday (manifesto R-4).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// The playbook's name or link.
    pub name: String,
    /// Recovery time objective: how long recovery may take.
    #[serde(default)]
    pub rto: Option<Dur>,
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<PlaybookStep>,
}

/// One step of a playbook.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybookStep {
    /// What to do.
    pub step: String,
    /// Who does it.
    #[serde(default)]
    pub owner: Option<String>,
}

impl FaultEntry {
    /// Every fault kind, by its scenario key.
    pub const ALL_KINDS: &'static [&'static str] = &[
        "process_kill",
        "network",
        "dns",
        "spot_interruption",
        "pod_kill",
        "container_kill",
        "node_drain",
        "network_latency",
        "dns_failure",
        "ec2_stop",
        "ec2_reboot",
        "ec2_terminate",
    ];

    /// Whether the fault lasts until reverted (latency, a drain, stopped instances) rather
    /// than being an instant action (a kill, a termination).
    pub fn is_durable(&self) -> bool {
        if let Some(spot) = self
            .spot_interruption
            .as_ref()
            .and_then(SpotInterruption::aws)
        {
            // Stopped spot instances stay down until the fault ends (capacity is back);
            // terminated ones, and FIS's interruptions, are gone for good.
            return spot.method == InterruptionMethod::Ec2
                && spot.behavior != InterruptionBehavior::Terminate;
        }
        !self.kinds().iter().all(|k| {
            matches!(
                *k,
                "process_kill"
                    | "spot_interruption"
                    | "pod_kill"
                    | "container_kill"
                    | "ec2_reboot"
                    | "ec2_terminate"
            )
        })
    }

    /// The least time the fault needs on the timeline: an EC2 spot interruption acts only
    /// when its notice ends, so its phase must still run by then.
    pub fn min_length(&self) -> std::time::Duration {
        self.spot_interruption
            .as_ref()
            .and_then(SpotInterruption::aws)
            .map(|s| s.notice.get())
            .unwrap_or_default()
    }

    /// What the fault acts on, for overlap checks (`local:backend`).
    pub fn scope(&self) -> Option<String> {
        if let Some(pk) = &self.process_kill {
            return Some(format!("local service {}", pk.service));
        }
        if let Some(n) = &self.network {
            return Some(format!("local link into {}", n.service));
        }
        if let Some(d) = &self.dns {
            return Some(format!("local dns {}", d.names.join(",")));
        }
        if let Some(SpotInterruption::Local(_)) = &self.spot_interruption {
            return Some("local spot instances".into());
        }
        // AWS faults: the same selector means the same instances.
        self.aws_spec()
            .map(|a| format!("aws instances {}", a.selector().describe()))
    }

    /// Every fault kind with whether this entry sets it: the one table that `kinds` reads
    /// (and that a test holds equal to [`FaultEntry::ALL_KINDS`]), so a new kind is one line.
    fn kind_table(&self) -> [(&'static str, bool); 12] {
        [
            ("process_kill", self.process_kill.is_some()),
            ("network", self.network.is_some()),
            ("dns", self.dns.is_some()),
            ("spot_interruption", self.spot_interruption.is_some()),
            ("pod_kill", self.pod_kill.is_some()),
            ("container_kill", self.container_kill.is_some()),
            ("node_drain", self.node_drain.is_some()),
            ("network_latency", self.network_latency.is_some()),
            ("dns_failure", self.dns_failure.is_some()),
            ("ec2_stop", self.ec2_stop.is_some()),
            ("ec2_reboot", self.ec2_reboot.is_some()),
            ("ec2_terminate", self.ec2_terminate.is_some()),
        ]
    }

    /// The fault kinds set on this entry, by their scenario key. Exactly one is valid.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.kind_table()
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect()
    }

    /// The target a fault kind of this entry belongs to. `spot_interruption` is the one key
    /// two targets share: it goes to `aws` when it selects EC2 instances (`select:`).
    pub fn target_of(&self, kind: &str) -> &'static str {
        if kind == "spot_interruption" {
            return match &self.spot_interruption {
                Some(SpotInterruption::Aws(_)) => "aws",
                _ => "local",
            };
        }
        if crate::targets::kubernetes::FAULT_KINDS.contains(&kind) {
            "kubernetes"
        } else if crate::targets::aws::FAULT_KINDS.contains(&kind) {
            "aws"
        } else {
            "local"
        }
    }

    /// The local sandbox's fault spec set on this entry, if any.
    pub fn local_spec(&self) -> Option<LocalFaultSpec> {
        use LocalFaultSpec as L;
        self.process_kill
            .clone()
            .map(L::ProcessKill)
            .or_else(|| self.network.clone().map(L::Network))
            .or_else(|| self.dns.clone().map(L::Dns))
            .or_else(|| {
                self.spot_interruption
                    .as_ref()
                    .and_then(SpotInterruption::local)
                    .cloned()
                    .map(L::SpotInterruption)
            })
    }

    /// The AWS fault spec set on this entry, if any.
    pub fn aws_spec(&self) -> Option<AwsFaultSpec> {
        use AwsFaultSpec as A;
        self.spot_interruption
            .as_ref()
            .and_then(SpotInterruption::aws)
            .cloned()
            .map(A::SpotInterruption)
            .or_else(|| self.ec2_stop.clone().map(A::Ec2Stop))
            .or_else(|| self.ec2_reboot.clone().map(A::Ec2Reboot))
            .or_else(|| self.ec2_terminate.clone().map(A::Ec2Terminate))
    }

    /// The Kubernetes fault spec set on this entry, if any.
    pub fn kubernetes_spec(&self) -> Option<crate::targets::kubernetes::KubeFaultSpec> {
        use crate::targets::kubernetes::KubeFaultSpec as K;
        self.pod_kill
            .clone()
            .map(K::PodKill)
            .or_else(|| self.container_kill.clone().map(K::ContainerKill))
            .or_else(|| self.node_drain.clone().map(K::NodeDrain))
            .or_else(|| self.network_latency.clone().map(K::NetworkLatency))
            .or_else(|| self.dns_failure.clone().map(K::DnsFailure))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_table_and_all_kinds_name_the_same_kinds() {
        let empty: FaultEntry = serde_saphyr::from_str("{}").unwrap();
        let names: Vec<&str> = empty.kind_table().iter().map(|(k, _)| *k).collect();
        assert_eq!(names, FaultEntry::ALL_KINDS);
        assert!(empty.kinds().is_empty());
    }

    #[test]
    fn spot_interruption_goes_to_aws_with_select_and_to_the_sandbox_without() {
        let aws: FaultEntry = serde_saphyr::from_str(
            "spot_interruption:\n  select: {tags: {team: shop}}\n  notice: 30s\n  behavior: stop\n",
        )
        .unwrap();
        assert_eq!(aws.target_of("spot_interruption"), "aws");
        assert!(aws.aws_spec().is_some());
        assert!(
            aws.is_durable(),
            "stopped instances stay down until the fault ends"
        );
        assert_eq!(aws.min_length(), std::time::Duration::from_secs(30));
        let local: FaultEntry =
            serde_saphyr::from_str("spot_interruption:\n  instances: 2\n  notice: 5s\n").unwrap();
        assert_eq!(local.target_of("spot_interruption"), "local");
        assert!(local.aws_spec().is_none());
        assert!(!local.is_durable());
        assert_eq!(local.min_length(), std::time::Duration::ZERO);
        let terminate: FaultEntry = serde_saphyr::from_str(
            "spot_interruption:\n  select: {instance_ids: [i-0abc]}\n  acknowledge_irreversible: true\n",
        )
        .unwrap();
        assert!(!terminate.is_durable(), "a termination is instant");
        let stop: FaultEntry =
            serde_saphyr::from_str("ec2_stop:\n  select: {tags: {a: b}}\n").unwrap();
        assert_eq!(stop.target_of("ec2_stop"), "aws");
        assert!(stop.is_durable());
        assert_eq!(stop.scope().unwrap(), "aws instances tagged a=b");
    }
}
