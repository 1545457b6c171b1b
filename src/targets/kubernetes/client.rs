//! The connection to one cluster: loading the kubeconfig, pinning the context the scenario
//! was written for, and the few API helpers every fault shares (paginated lists, API
//! discovery for policy/v1 versus policy/v1beta1, error classification).

use std::path::PathBuf;
use std::sync::Arc;

use kube::api::{ListParams, ObjectList};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::targets::TargetError;

/// Page size for lists. The API server answers large lists in pages with a continue token;
/// asking for pages keeps one huge namespace from holding a whole list in memory at once.
pub const PAGE_SIZE: u32 = 500;

/// Errors about which cluster gameday is talking to.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    /// The kubeconfig's current context is not the one the scenario names.
    #[error("kube context is `{actual}` but the scenario is meant for `{expected}`; switch context (kubectl config use-context {expected}) or pass --yes to run against `{actual}` anyway")]
    Mismatch {
        /// The scenario's `targets.kubernetes.context`.
        expected: String,
        /// The kubeconfig's current context.
        actual: String,
    },
}

/// Stop a run aimed at the wrong cluster: the kube context in use must be the one the
/// scenario names, unless the operator said `--yes`. Called by the CLI before anything
/// (even `plan`'s reads) happens.
pub fn check_context(expected: &str, actual: &str, yes: bool) -> Result<(), ContextError> {
    if expected == actual || yes {
        Ok(())
    } else {
        Err(ContextError::Mismatch {
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// Which kubeconfig file gameday reads: the scenario's, else `$KUBECONFIG` (first entry),
/// else `~/.kube/config`, the way kubectl looks.
pub fn kubeconfig_path(explicit: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(PathBuf::from(p));
    }
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        return std::env::split_paths(&k).next();
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// Read the kubeconfig and return it with its current context.
pub fn read_kubeconfig(explicit: Option<&str>) -> Result<(Kubeconfig, String), TargetError> {
    let path = kubeconfig_path(explicit).ok_or_else(|| TargetError::Unreachable {
        target: "kubernetes".into(),
        reason: "no kubeconfig: set KUBECONFIG or targets.kubernetes.kubeconfig".into(),
    })?;
    let kc = Kubeconfig::read_from(&path).map_err(|e| TargetError::Unreachable {
        target: "kubernetes".into(),
        reason: format!("cannot read kubeconfig {}: {e}", path.display()),
    })?;
    let current = kc.current_context.clone().unwrap_or_default();
    Ok((kc, current))
}

/// Build a client for one named context of a kubeconfig.
pub async fn client_for(kc: Kubeconfig, context: &str) -> Result<Client, TargetError> {
    crate::install_crypto_provider();
    let opts = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(|e| TargetError::Unreachable {
            target: "kubernetes".into(),
            reason: format!("kube context `{context}`: {e}"),
        })?;
    Client::try_from(config).map_err(|e| TargetError::Unreachable {
        target: "kubernetes".into(),
        reason: format!("kube context `{context}`: {e}"),
    })
}

/// The shared connection handed to every Kubernetes fault of a run.
#[derive(Clone)]
pub struct Kube {
    /// The API client.
    pub client: Client,
    policy: Arc<OnceCell<PolicyVersion>>,
}

/// Which `policy` group version serves Eviction and PodDisruptionBudget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    /// GA since Kubernetes 1.21 (Eviction 1.22).
    V1,
    /// What older servers (such as 1.20) serve; removed in 1.25.
    V1beta1,
}

impl PolicyVersion {
    /// `policy/v1` or `policy/v1beta1`.
    pub fn api_version(self) -> &'static str {
        match self {
            PolicyVersion::V1 => "policy/v1",
            PolicyVersion::V1beta1 => "policy/v1beta1",
        }
    }
}

impl Kube {
    /// Wrap a client (a real one, or a `tower-test` mock in tests).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            policy: Arc::new(OnceCell::new()),
        }
    }

    /// Discover whether the server serves `policy/v1`, falling back to `policy/v1beta1` as
    /// `kubectl drain` does. Asked once per run.
    pub async fn policy_version(&self) -> Result<PolicyVersion, kube::Error> {
        self.policy
            .get_or_try_init(|| async {
                let req = http::Request::get("/apis/policy")
                    .body(Vec::new())
                    .expect("static request");
                let group: serde_json::Value = self.client.request(req).await?;
                let has_v1 = group["versions"]
                    .as_array()
                    .map(|vs| vs.iter().any(|v| v["version"] == "v1"))
                    .unwrap_or(false);
                Ok(if has_v1 {
                    PolicyVersion::V1
                } else {
                    PolicyVersion::V1beta1
                })
            })
            .await
            .copied()
    }
}

/// List every object matching `lp`, following continue tokens page by page.
pub async fn list_all<K>(api: &Api<K>, lp: &ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut lp = lp.clone().limit(PAGE_SIZE);
    let mut out = Vec::new();
    loop {
        let page: ObjectList<K> = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// The HTTP status of an API error, if the error is one.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(r) => Some(r.code),
        _ => None,
    }
}

/// Whether the error is a 404: for reverts, "already gone" is success.
pub fn is_not_found(e: &kube::Error) -> bool {
    api_code(e) == Some(404)
}

/// Wrap a kube error into the target's error with the action and object it is about.
pub fn op_err(action: &str, object: impl Into<String>, e: kube::Error) -> TargetError {
    TargetError::Op {
        action: action.to_string(),
        object: object.into(),
        source: anyhow::Error::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_mismatch_stops_unless_yes() {
        assert!(check_context("staging", "staging", false).is_ok());
        let e = check_context("staging", "prod", false).unwrap_err();
        assert!(e.to_string().contains("`prod`"), "{e}");
        assert!(e.to_string().contains("--yes"), "{e}");
        assert!(check_context("staging", "prod", true).is_ok());
    }
}
