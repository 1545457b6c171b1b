//! The scenario side of the Kubernetes target: the YAML structs a scenario writes under
//! `targets.kubernetes` and under each Kubernetes fault, with their validation.
//!
//! Selection follows Chaos Mesh's vocabulary (namespaces, label / field / annotation
//! selectors, names; modes one / all / fixed / fixed_percent / random_max_percent) so that
//! people who know it read our scenarios without a manual. Everything here is pure data:
//! [`super::select`] applies it, the fault files act on it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::Dur;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Namespaces no fault touches unless the scenario says `allow_protected_namespaces: true`:
/// the control plane's own, and gameday's (when it runs in the cluster).
pub const DEFAULT_PROTECTED_NAMESPACES: &[&str] =
    &["kube-system", "kube-public", "kube-node-lease", "gameday"];

/// `targets.kubernetes`: which cluster the scenario is meant for and what it may touch.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct KubernetesConfig {
    /// The kube context this scenario is written for. If the kubeconfig's current context
    /// differs, the run stops before anything happens unless `--yes` is given: a gameday
    /// meant for staging must not land on production because a terminal was left there.
    pub context: String,
    /// Path of the kubeconfig to use. Default: `$KUBECONFIG`, else `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Let faults select objects in protected namespaces (kube-system, kube-public,
    /// kube-node-lease, gameday and `protected_namespaces`). Needed for a cluster-wide DNS
    /// fault only if it selects pods there; the CoreDNS Corefile patch is always allowed
    /// because it is what that fault is about.
    #[serde(default)]
    pub allow_protected_namespaces: bool,
    /// More namespaces to protect, on top of the built-in list.
    #[serde(default)]
    pub protected_namespaces: Vec<String>,
    /// Services to forward to local ports for the whole run (through the API server, as
    /// `kubectl port-forward` does), so the load generator reaches the app from outside the
    /// cluster: `load.url: http://127.0.0.1:<local_port>/`.
    #[serde(default)]
    pub port_forwards: Vec<PortForwardSpec>,
}

/// One Service port forwarded to `127.0.0.1:<local_port>`. Each new connection goes to a
/// ready pod behind the Service, picked at random, so a killed pod costs only the
/// connections it held.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PortForwardSpec {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub service: String,
    /// The Service port (its `port`, not the `targetPort`).
    pub port: u16,
    /// The local port on 127.0.0.1.
    pub local_port: u16,
}

/// How many of the matching objects a fault hits, as in Chaos Mesh.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One object, picked at random.
    #[default]
    One,
    /// Every matching object.
    All,
    /// Exactly `value` objects, picked at random (fewer only if fewer match).
    Fixed,
    /// `value` percent of the matching objects (rounded down, at least one), at random.
    FixedPercent,
    /// A random number between one and `value` percent of the matching objects.
    RandomMaxPercent,
}

/// Which pods a fault may hit. Every given criterion must hold (AND).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PodSelector {
    /// Namespaces to look in. Empty: every namespace that is not protected.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Labels the pods must carry with exactly these values.
    #[serde(default)]
    pub label_selectors: BTreeMap<String, String>,
    /// A label selector in Kubernetes syntax for what a map cannot say
    /// (`tier in (web,api)`, `!canary`). ANDed with `label_selectors`.
    #[serde(default)]
    pub expression_selector: Option<String>,
    /// Field selectors the API server evaluates (`status.phase: Running`,
    /// `spec.nodeName: node-1`).
    #[serde(default)]
    pub field_selectors: BTreeMap<String, String>,
    /// Annotations the pods must carry with exactly these values (evaluated by gameday:
    /// the API server cannot select on annotations).
    #[serde(default)]
    pub annotation_selectors: BTreeMap<String, String>,
    /// Pod names; when given, only these pods (in the selected namespaces) are eligible.
    #[serde(default)]
    pub names: Vec<String>,
}

/// Which nodes a drain may hit. Every given criterion must hold (AND).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct NodeSelector {
    /// Labels the nodes must carry with exactly these values
    /// (`topology.kubernetes.io/zone: us-east-1a`).
    #[serde(default)]
    pub label_selectors: BTreeMap<String, String>,
    /// A label selector in Kubernetes syntax, ANDed with `label_selectors`.
    #[serde(default)]
    pub expression_selector: Option<String>,
    /// Field selectors the API server evaluates (`spec.unschedulable: "false"`).
    #[serde(default)]
    pub field_selectors: BTreeMap<String, String>,
    /// Annotations the nodes must carry with exactly these values.
    #[serde(default)]
    pub annotation_selectors: BTreeMap<String, String>,
    /// Node names; when given, only these nodes are eligible.
    #[serde(default)]
    pub names: Vec<String>,
}

/// `pod_kill`: delete pods with a grace period; once, or again on every tick of the
/// fault entry's `every`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PodKillSpec {
    /// Which pods may be hit.
    pub selector: PodSelector,
    /// How many of them are hit.
    #[serde(default)]
    pub mode: Mode,
    /// The number (`fixed`) or percentage (`fixed_percent`, `random_max_percent`).
    #[serde(default)]
    pub value: Option<u32>,
    /// Blast-radius cap: the run refuses to start if the mode would hit more pods.
    #[serde(default)]
    pub max_targets: Option<usize>,
    /// Grace period of the delete (`0s` kills at once). Default: the pod's own.
    #[serde(default)]
    pub grace_period: Option<Dur>,
}

/// `container_kill`: kill containers of selected pods (their main process gets SIGKILL
/// from an ephemeral container sharing the container's process namespace; the kubelet
/// restarts the container).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ContainerKillSpec {
    /// Which pods may be hit.
    pub selector: PodSelector,
    /// How many of them are hit.
    #[serde(default)]
    pub mode: Mode,
    /// The number or percentage for `fixed` / `*_percent` modes.
    #[serde(default)]
    pub value: Option<u32>,
    /// Blast-radius cap: the run refuses to start if the mode would hit more pods.
    #[serde(default)]
    pub max_targets: Option<usize>,
    /// The containers to kill in each pod. Empty: the pod's first container.
    #[serde(default)]
    pub container_names: Vec<String>,
    /// Signal sent to the container's main process (default `SIGTERM`). Not SIGKILL: the
    /// kernel never delivers SIGKILL to a PID namespace's first process from inside that
    /// namespace, which is where the ephemeral container sits.
    #[serde(default)]
    pub signal: ContainerSignal,
    /// Image of the ephemeral container that sends the signal (needs `kill`).
    #[serde(default = "default_tool_image")]
    pub image: String,
}

/// `node_drain`: cordon nodes and evict their pods through the Eviction API, honouring
/// PodDisruptionBudgets; revert uncordons.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct NodeDrainSpec {
    /// Which nodes may be drained.
    pub selector: NodeSelector,
    /// How many of them are drained.
    #[serde(default)]
    pub mode: Mode,
    /// The number or percentage for `fixed` / `*_percent` modes.
    #[serde(default)]
    pub value: Option<u32>,
    /// Blast-radius cap: the run refuses to start if the mode would hit more nodes.
    #[serde(default)]
    pub max_targets: Option<usize>,
    /// How long to keep retrying evictions that a PodDisruptionBudget refuses (429)
    /// before the fault fails (the node stays cordoned until revert). Default `5m`.
    #[serde(default)]
    pub eviction_timeout: Option<Dur>,
    /// Grace period passed with each eviction. Default: the pod's own.
    #[serde(default)]
    pub grace_period: Option<Dur>,
}

/// `network_latency`: delay (and optionally drop) the traffic of selected pods with
/// `tc netem`, applied by an ephemeral container in the pod's network namespace.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct NetworkLatencySpec {
    /// Which pods may be hit.
    pub selector: PodSelector,
    /// How many of them are hit.
    #[serde(default)]
    pub mode: Mode,
    /// The number or percentage for `fixed` / `*_percent` modes.
    #[serde(default)]
    pub value: Option<u32>,
    /// Blast-radius cap: the run refuses to start if the mode would hit more pods.
    #[serde(default)]
    pub max_targets: Option<usize>,
    /// Added delay on egress, e.g. `100ms`.
    pub latency: Dur,
    /// Random variation of the delay, e.g. `20ms`.
    #[serde(default)]
    pub jitter: Option<Dur>,
    /// Percentage of egress packets dropped (0 to 100).
    #[serde(default)]
    pub loss_percent: Option<f64>,
    /// Network interface inside the pod. Default `eth0`.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// Image of the ephemeral container; it needs `tc` (iproute2) and `sh`.
    #[serde(default = "default_tool_image")]
    pub image: String,
}

/// Where a DNS failure applies.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DnsScope {
    /// Every pod that resolves through CoreDNS: the Corefile answers the matching names
    /// with `rcode`.
    #[default]
    Cluster,
    /// Only selected pods: an ephemeral container drops their DNS queries for the
    /// matching names (the resolver sees time-outs, then SERVFAIL).
    Pod,
}

/// The DNS answer a cluster-scope failure gives for matching names.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DnsRcode {
    /// The name does not exist.
    #[default]
    Nxdomain,
    /// The server failed.
    Servfail,
}

/// Where CoreDNS's configuration lives (kubeadm's defaults).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CorednsRef {
    /// Namespace of the ConfigMap.
    #[serde(default = "default_coredns_namespace")]
    pub namespace: String,
    /// Name of the ConfigMap.
    #[serde(default = "default_coredns_configmap")]
    pub configmap: String,
    /// Key of the Corefile in the ConfigMap.
    #[serde(default = "default_corefile_key")]
    pub key: String,
}

impl Default for CorednsRef {
    fn default() -> Self {
        Self {
            namespace: default_coredns_namespace(),
            configmap: default_coredns_configmap(),
            key: default_corefile_key(),
        }
    }
}

/// `dns_failure`: names stop resolving, cluster-wide (CoreDNS) or for selected pods.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct DnsFailureSpec {
    /// `cluster` (patch the CoreDNS Corefile) or `pod` (ephemeral container per pod).
    #[serde(default)]
    pub scope: DnsScope,
    /// Domain names that fail, each with its subdomains (`payments.shop.svc.cluster.local`,
    /// `example.com`). A leading `*.` matches subdomains only.
    pub names: Vec<String>,
    /// Answer for cluster scope: `nxdomain` or `servfail`.
    #[serde(default)]
    pub rcode: DnsRcode,
    /// Where CoreDNS's Corefile is (cluster scope).
    #[serde(default)]
    pub coredns: CorednsRef,
    /// Which pods are hit (pod scope only).
    #[serde(default)]
    pub selector: Option<PodSelector>,
    /// How many pods are hit (pod scope only).
    #[serde(default)]
    pub mode: Mode,
    /// The number or percentage for `fixed` / `*_percent` modes (pod scope only).
    #[serde(default)]
    pub value: Option<u32>,
    /// Blast-radius cap on pods (pod scope only).
    #[serde(default)]
    pub max_targets: Option<usize>,
    /// Image of the ephemeral container (pod scope); it needs `iptables` and `sh`.
    #[serde(default = "default_tool_image")]
    pub image: String,
}

/// A readiness probe for the hypothesis: a Deployment or StatefulSet keeps enough ready
/// replicas.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct WorkloadReadyProbe {
    /// `deployment` or `statefulset`.
    pub kind: WorkloadKind,
    /// Namespace of the workload.
    pub namespace: String,
    /// Name of the workload.
    pub name: String,
    /// Ready replicas required for the probe to pass. Default: all desired replicas.
    #[serde(default)]
    pub min_ready: Option<i32>,
}

/// Workload kinds a readiness probe reads.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    Statefulset,
}

/// A restart probe for the hypothesis: the selected pods' containers restart at most
/// `max_restarts` times in all (counted from when the probe is first taken).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PodRestartsProbe {
    /// Which pods are counted.
    pub selector: PodSelector,
    /// Most restarts allowed across those pods.
    #[serde(default)]
    pub max_restarts: u32,
}

fn default_tool_image() -> String {
    // netshoot ships tc, iptables, kill and sh in one image; pinned so a run is repeatable.
    "nicolaka/netshoot:v0.13".to_string()
}
/// Signals `container_kill` can deliver to a container's main process.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ContainerSignal {
    /// A polite stop; most servers exit on it.
    #[default]
    #[serde(rename = "SIGTERM")]
    Sigterm,
    /// Interrupt, as Ctrl-C.
    #[serde(rename = "SIGINT")]
    Sigint,
    /// Quit (many runtimes dump threads and exit).
    #[serde(rename = "SIGQUIT")]
    Sigquit,
    /// Hang-up.
    #[serde(rename = "SIGHUP")]
    Sighup,
}

impl ContainerSignal {
    /// The name `kill -s` takes.
    pub fn kill_name(self) -> &'static str {
        match self {
            ContainerSignal::Sigterm => "TERM",
            ContainerSignal::Sigint => "INT",
            ContainerSignal::Sigquit => "QUIT",
            ContainerSignal::Sighup => "HUP",
        }
    }
}

fn default_interface() -> String {
    "eth0".to_string()
}
fn default_coredns_namespace() -> String {
    "kube-system".to_string()
}
fn default_coredns_configmap() -> String {
    "coredns".to_string()
}
fn default_corefile_key() -> String {
    "Corefile".to_string()
}

/// A Kubernetes fault or probe spec that cannot be used as written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// `value` is missing or out of range for the mode.
    #[error("mode {mode}: {reason}")]
    ModeValue {
        /// The mode as written.
        mode: &'static str,
        /// What is wrong with `value`.
        reason: String,
    },
    /// Any other field that cannot be used.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Mode {
    /// The mode as written in scenarios.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::One => "one",
            Mode::All => "all",
            Mode::Fixed => "fixed",
            Mode::FixedPercent => "fixed_percent",
            Mode::RandomMaxPercent => "random_max_percent",
        }
    }

    /// Check that `value` fits the mode: needed and at least 1 for `fixed`, 1..=100 for
    /// the percent modes, meaningless (and refused, to catch typos) for `one` and `all`.
    pub fn check_value(self, value: Option<u32>) -> Result<(), SpecError> {
        let err = |reason: &str| {
            Err(SpecError::ModeValue {
                mode: self.as_str(),
                reason: reason.to_string(),
            })
        };
        match (self, value) {
            (Mode::One | Mode::All, None) => Ok(()),
            (Mode::One | Mode::All, Some(_)) => {
                err("takes no `value`; use `fixed` or a percent mode to choose how many")
            }
            (_, None) => err("needs a `value`"),
            (Mode::Fixed, Some(0)) => err("`value` must be at least 1"),
            (Mode::Fixed, Some(_)) => Ok(()),
            (_, Some(v)) if v == 0 || v > 100 => err("`value` is a percentage from 1 to 100"),
            _ => Ok(()),
        }
    }
}

fn check_names(names: &[String]) -> Result<(), SpecError> {
    if names.is_empty() {
        return Err(SpecError::Field {
            field: "names".into(),
            reason: "list at least one domain name to fail".into(),
        });
    }
    for n in names {
        let bare = n.strip_prefix("*.").unwrap_or(n).trim_end_matches('.');
        let ok = !bare.is_empty()
            && bare.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !ok {
            return Err(SpecError::Field {
                field: "names".into(),
                reason: format!("`{n}` is not a domain name (letters, digits, `-`, dots; an optional leading `*.`)"),
            });
        }
    }
    Ok(())
}

impl PodKillSpec {
    /// Check everything that can be checked without a cluster (`gameday validate`).
    pub fn validate(&self) -> Result<(), SpecError> {
        self.mode.check_value(self.value)
    }

    /// The grace period in whole seconds, as the API takes it.
    pub fn grace_seconds(&self) -> Option<u32> {
        self.grace_period.map(|d| d.get().as_secs() as u32)
    }
}

impl ContainerKillSpec {
    /// Check everything that can be checked without a cluster.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.mode.check_value(self.value)
    }
}

impl NodeDrainSpec {
    /// Check everything that can be checked without a cluster.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.mode.check_value(self.value)?;
        if self.eviction_timeout.is_some_and(|t| t.get().is_zero()) {
            return Err(SpecError::Field {
                field: "eviction_timeout".into(),
                reason: "must be longer than zero".into(),
            });
        }
        Ok(())
    }

    /// How long evictions blocked by a PodDisruptionBudget are retried (default 5 min).
    pub fn eviction_timeout(&self) -> Duration {
        self.eviction_timeout
            .map(Dur::get)
            .unwrap_or(Duration::from_secs(300))
    }
}

impl NetworkLatencySpec {
    /// Check everything that can be checked without a cluster.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.mode.check_value(self.value)?;
        if self.latency.get().is_zero() && self.loss_percent.unwrap_or(0.0) == 0.0 {
            return Err(SpecError::Field {
                field: "latency".into(),
                reason: "a zero latency without loss_percent injects nothing".into(),
            });
        }
        if let Some(l) = self.loss_percent {
            if !(0.0..=100.0).contains(&l) {
                return Err(SpecError::Field {
                    field: "loss_percent".into(),
                    reason: format!("{l} is not a percentage from 0 to 100"),
                });
            }
        }
        if self.interface.is_empty()
            || !self
                .interface
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(SpecError::Field {
                field: "interface".into(),
                reason: format!("`{}` is not an interface name", self.interface),
            });
        }
        Ok(())
    }
}

impl DnsFailureSpec {
    /// Check everything that can be checked without a cluster.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_names(&self.names)?;
        match self.scope {
            DnsScope::Cluster => {
                if self.selector.is_some() {
                    return Err(SpecError::Field {
                        field: "selector".into(),
                        reason: "cluster scope fails the names for every pod; use `scope: pod` to select pods".into(),
                    });
                }
                Ok(())
            }
            DnsScope::Pod => {
                if self.selector.is_none() {
                    return Err(SpecError::Field {
                        field: "selector".into(),
                        reason: "pod scope needs a `selector` for the pods to hit".into(),
                    });
                }
                self.mode.check_value(self.value)
            }
        }
    }
}
