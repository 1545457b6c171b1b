//! The Kubernetes target: pod kill, container kill, node drain, network latency and DNS
//! failure against a real cluster, through the API server alone (`kube` + `k8s-openapi`),
//! with nothing installed in the cluster beforehand: no CRD, no daemon.
//!
//! Layout: [`spec`] holds the scenario structs, [`select`] the pure selection logic,
//! [`client`] the connection and context pinning, [`pods`] the shared pod lookup; then one
//! file per fault kind ([`pod_kill`], [`container_kill`], [`node_drain`],
//! [`network_latency`], [`dns_failure`]), [`ephemeral`] for the ephemeral-container
//! plumbing two of them share, [`preflight`] for `plan`'s checks and [`probe`] for the
//! hypothesis. Every fault records in its [`crate::targets::Prepared::undo`] what [`Target::revert`] needs,
//! so `gameday recover` in a fresh process can undo it from the ledger alone.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use kube::config::Kubeconfig;
use kube::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::targets::{Fault, Finding, Target, TargetError};

pub mod client;
pub mod container_kill;
pub mod dns_failure;
pub mod ephemeral;
pub mod network_latency;
pub mod node_drain;
pub mod pod_kill;
pub mod pods;
pub mod port_forward;
pub mod preflight;
pub mod probe;
pub mod select;
pub mod spec;
pub mod spot_notice;

pub use client::check_context;
use client::Kube;
use spec::{
    ContainerKillSpec, DnsFailureSpec, KubernetesConfig, NetworkLatencySpec, NodeDrainSpec,
    PodKillSpec, SpecError,
};

/// What every fault of one run shares: the connection, the scenario's target config and
/// the resolved set of protected namespaces.
///
/// The kubeconfig is read and the context checked when the target is built (synchronously,
/// so a mismatch is known before anything else happens and the ledger can name the
/// context); the API client itself is made on first use, because building one is async.
pub struct Shared {
    /// `targets.kubernetes` as written.
    pub config: KubernetesConfig,
    /// Namespaces no fault touches unless `allow_protected_namespaces`.
    pub protected: BTreeSet<String>,
    /// The kube context in use (may differ from `config.context` under `--yes`).
    context: String,
    /// The kubeconfig to build the client from, or why there is none.
    setup: Result<Option<Kubeconfig>, SetupError>,
    kube: OnceCell<Kube>,
    /// The port-forwards running for this run.
    forwards: std::sync::Mutex<Vec<port_forward::Forward>>,
}

/// Why the target cannot connect, kept until a fault first needs the cluster.
#[derive(Debug, Clone)]
enum SetupError {
    /// The kubeconfig could not be read.
    Unreachable(String),
    /// The context is not the one the scenario is meant for.
    Context(String),
}

impl Shared {
    /// The connection, made on first use.
    pub async fn kube(&self) -> Result<&Kube, TargetError> {
        self.kube
            .get_or_try_init(|| async {
                match &self.setup {
                    Ok(Some(kc)) => Ok(Kube::new(
                        client::client_for(kc.clone(), &self.context).await?,
                    )),
                    Ok(None) => Err(TargetError::Invalid(
                        "kubernetes target has no client".into(),
                    )),
                    Err(SetupError::Unreachable(reason)) => Err(TargetError::Unreachable {
                        target: "kubernetes".into(),
                        reason: reason.clone(),
                    }),
                    Err(SetupError::Context(msg)) => Err(TargetError::Invalid(msg.clone())),
                }
            })
            .await
    }

    /// A clone of the API client, made on first use.
    pub async fn client(&self) -> Result<Client, TargetError> {
        Ok(self.kube().await?.client.clone())
    }

    /// The kube context in use.
    pub fn context(&self) -> &str {
        &self.context
    }
}

/// The Kubernetes [`Target`].
#[derive(Clone)]
pub struct KubernetesTarget {
    shared: Arc<Shared>,
}

/// One Kubernetes fault's parameters, tagged by kind as in scenarios
/// (`pod_kill: {...}`); [`KubernetesTarget::fault`] binds it to the target.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum KubeFaultSpec {
    /// Delete pods.
    PodKill(PodKillSpec),
    /// Kill containers inside pods.
    ContainerKill(ContainerKillSpec),
    /// Cordon and drain nodes.
    NodeDrain(NodeDrainSpec),
    /// Delay / drop pod traffic.
    NetworkLatency(NetworkLatencySpec),
    /// Fail DNS names.
    DnsFailure(DnsFailureSpec),
}

/// The fault kinds this target knows, as written in scenarios.
pub const FAULT_KINDS: &[&str] = &[
    pod_kill::KIND,
    container_kill::KIND,
    node_drain::KIND,
    network_latency::KIND,
    dns_failure::KIND,
];

impl KubeFaultSpec {
    /// Parse one fault's parameters given its kind (`pod_kill`, ...), as the scenario
    /// model hands them over.
    pub fn from_kind(kind: &str, params: serde_json::Value) -> Result<Self, SpecError> {
        let field = |e: serde_json::Error| SpecError::Field {
            field: kind.to_string(),
            reason: e.to_string(),
        };
        Ok(match kind {
            pod_kill::KIND => Self::PodKill(serde_json::from_value(params).map_err(field)?),
            container_kill::KIND => {
                Self::ContainerKill(serde_json::from_value(params).map_err(field)?)
            }
            node_drain::KIND => Self::NodeDrain(serde_json::from_value(params).map_err(field)?),
            network_latency::KIND => {
                Self::NetworkLatency(serde_json::from_value(params).map_err(field)?)
            }
            dns_failure::KIND => Self::DnsFailure(serde_json::from_value(params).map_err(field)?),
            other => {
                return Err(SpecError::Field {
                    field: "kind".into(),
                    reason: format!(
                        "`{other}` is not a kubernetes fault kind (known: {})",
                        FAULT_KINDS.join(", ")
                    ),
                })
            }
        })
    }

    /// The kind as written in scenarios.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PodKill(_) => pod_kill::KIND,
            Self::ContainerKill(_) => container_kill::KIND,
            Self::NodeDrain(_) => node_drain::KIND,
            Self::NetworkLatency(_) => network_latency::KIND,
            Self::DnsFailure(_) => dns_failure::KIND,
        }
    }

    /// Everything checkable without a cluster (`gameday validate`).
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            Self::PodKill(s) => s.validate(),
            Self::ContainerKill(s) => s.validate(),
            Self::NodeDrain(s) => s.validate(),
            Self::NetworkLatency(s) => s.validate(),
            Self::DnsFailure(s) => s.validate(),
        }
    }
}

/// What `ledger_config` records, and `from_ledger_config` reads back in `gameday recover`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerConfig {
    /// The kube context the run used (the one its faults landed on).
    pub context: String,
    /// The kubeconfig path the run read, if the scenario named one.
    pub kubeconfig: Option<String>,
    /// The scenario's target config, so recovered faults see the same protections.
    pub config: KubernetesConfig,
}

impl KubernetesTarget {
    /// Build the target as the scenario says, without contacting the cluster: read the
    /// kubeconfig and check that its current context is the one the scenario is meant for
    /// ([`check_context`], overridden by `yes`). A failure is kept and returned by the
    /// first operation that needs the cluster (`check_reachable`, `resolve`, ...), so that
    /// `plan` and `run` both stop before anything happens. The engine's registry calls this.
    pub fn new(config: KubernetesConfig, yes: bool) -> Self {
        let (setup, context) = match client::read_kubeconfig(config.kubeconfig.as_deref()) {
            Ok((kc, current)) => match check_context(&config.context, &current, yes) {
                Ok(()) => (Ok(Some(kc)), current),
                Err(e) => (Err(SetupError::Context(e.to_string())), current),
            },
            Err(e) => {
                let reason = match e {
                    TargetError::Unreachable { reason, .. } => reason,
                    other => other.to_string(),
                };
                (Err(SetupError::Unreachable(reason)), config.context.clone())
            }
        };
        Self::build(config, context, setup, None)
    }

    /// [`KubernetesTarget::new`], then connect at once: the error, if any, now.
    pub async fn connect(config: KubernetesConfig, yes: bool) -> Result<Self, TargetError> {
        let t = Self::new(config, yes);
        t.shared.kube().await?;
        Ok(t)
    }

    /// Rebuild the target for `gameday recover` from [`Target::ledger_config`]: the
    /// context the run used, whatever the kubeconfig's current context is now. Synchronous
    /// like [`KubernetesTarget::new`]; the client is made on first use.
    pub fn for_recovery(value: &serde_json::Value) -> Result<Self, TargetError> {
        let lc: LedgerConfig = serde_json::from_value(value.clone()).map_err(|e| {
            TargetError::Invalid(format!("kubernetes ledger config is unreadable: {e}"))
        })?;
        let (kc, _) = client::read_kubeconfig(lc.kubeconfig.as_deref())?;
        Ok(Self::build(lc.config, lc.context, Ok(Some(kc)), None))
    }

    /// [`KubernetesTarget::for_recovery`], connected at once.
    pub async fn from_ledger_config(value: &serde_json::Value) -> Result<Self, TargetError> {
        let t = Self::for_recovery(value)?;
        t.shared.kube().await?;
        Ok(t)
    }

    /// Build the target around an existing client: tests hand in a `tower-test` mock.
    pub fn with_client(client: Client, config: KubernetesConfig, context: String) -> Self {
        Self::build(config, context, Ok(None), Some(Kube::new(client)))
    }

    fn build(
        config: KubernetesConfig,
        context: String,
        setup: Result<Option<Kubeconfig>, SetupError>,
        kube: Option<Kube>,
    ) -> Self {
        let protected = select::protected_set(&config.protected_namespaces);
        let cell = OnceCell::new();
        if let Some(k) = kube {
            let _ = cell.set(k);
        }
        Self {
            shared: Arc::new(Shared {
                config,
                protected,
                context,
                setup,
                kube: cell,
                forwards: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// The kube context in use.
    pub fn context(&self) -> &str {
        self.shared.context()
    }

    /// The shared state, for probes and tests.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// What reacts to an AWS spot notice on this cluster: cordon and drain the instance's
    /// Node, as aws-node-termination-handler does. The registry plugs it into the AWS target
    /// when a scenario configures both.
    pub fn spot_notice_handler(&self) -> Arc<dyn crate::targets::aws::notice::SpotNoticeHandler> {
        Arc::new(spot_notice::SpotNoticeDrain::new(self.shared.clone()))
    }

    /// Bind one fault of the scenario (by its name there) to this target.
    pub fn fault(&self, name: &str, spec: KubeFaultSpec) -> Box<dyn Fault> {
        let shared = self.shared.clone();
        let name = name.to_string();
        match spec {
            KubeFaultSpec::PodKill(s) => Box::new(pod_kill::PodKill::new(shared, name, s)),
            KubeFaultSpec::ContainerKill(s) => {
                Box::new(container_kill::ContainerKill::new(shared, name, s))
            }
            KubeFaultSpec::NodeDrain(s) => Box::new(node_drain::NodeDrain::new(shared, name, s)),
            KubeFaultSpec::NetworkLatency(s) => {
                Box::new(network_latency::NetworkLatency::new(shared, name, s))
            }
            KubeFaultSpec::DnsFailure(s) => Box::new(dns_failure::DnsFailure::new(shared, name, s)),
        }
    }
}

#[async_trait]
impl Target for KubernetesTarget {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    async fn check_reachable(&self) -> Result<(), TargetError> {
        self.shared
            .client()
            .await?
            .apiserver_version()
            .await
            .map(|_| ())
            .map_err(|e| TargetError::Unreachable {
                target: "kubernetes".into(),
                reason: format!("kube context `{}`: {e}", self.shared.context),
            })
    }

    /// Open the scenario's port-forwards (the only thing this target runs for a whole run).
    async fn start(&self) -> Result<(), TargetError> {
        for spec in &self.shared.config.port_forwards {
            let fwd = port_forward::start(self.shared.clone(), spec.clone()).await?;
            tracing::info!(local = %fwd.local, service = %format!("{}/{}:{}", spec.namespace, spec.service, spec.port), "port-forward listening");
            self.shared
                .forwards
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(fwd);
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), TargetError> {
        let forwards: Vec<_> = self
            .shared
            .forwards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for f in &forwards {
            f.stop();
        }
        Ok(())
    }

    async fn preflight(&self, faults: &[&dyn Fault]) -> Result<Vec<Finding>, TargetError> {
        preflight::run(&self.shared, faults).await
    }

    async fn revert(&self, kind: &str, undo: &serde_json::Value) -> Result<(), TargetError> {
        if let Some(arg) = crate::failpoints::fired("kube-revert") {
            let code = arg.and_then(|c| c.parse().ok()).unwrap_or(503);
            return Err(client::op_err(
                "revert",
                kind,
                kube::Error::Api(kube::core::ErrorResponse {
                    status: "Failure".into(),
                    message: format!("fail point kube-revert ({code})"),
                    reason: "FailPoint".into(),
                    code,
                }),
            ));
        }
        match kind {
            pod_kill::KIND | container_kill::KIND => Ok(()),
            node_drain::KIND => node_drain::revert(&self.shared, undo).await,
            network_latency::KIND => network_latency::revert(&self.shared, undo).await,
            dns_failure::KIND => dns_failure::revert(&self.shared, undo).await,
            other => Err(TargetError::Invalid(format!(
                "ledger names kubernetes fault kind `{other}`, which this gameday does not know"
            ))),
        }
    }

    fn ledger_config(&self) -> serde_json::Value {
        serde_json::to_value(LedgerConfig {
            context: self.shared.context.clone(),
            kubeconfig: self.shared.config.kubeconfig.clone(),
            config: self.shared.config.clone(),
        })
        .expect("ledger config serializes")
    }
}

/// Parse an undo record, naming the fault kind when it is malformed.
pub(crate) fn parse_undo<T: serde::de::DeserializeOwned>(
    kind: &str,
    undo: &serde_json::Value,
) -> Result<T, TargetError> {
    serde_json::from_value(undo.clone())
        .map_err(|e| TargetError::Invalid(format!("{kind} undo record is unreadable: {e}")))
}
