//! Ephemeral containers as gameday's only in-pod tool: a short-lived container added to a
//! running pod through the `pods/ephemeralcontainers` subresource shares the pod's network
//! namespace (and, with `targetContainerName`, a container's process namespace), so `tc`,
//! `iptables` and `kill` act on the pod without anything installed in the cluster.
//!
//! Ephemeral containers cannot be removed or stopped through the API once added. So every
//! injecting container ends its own fault at the run's deadline (its script sleeps, then
//! cleans up), even if gameday died; and revert adds a second, short container that cleans
//! up at once. Container names are derived from the ledger record, which makes revert
//! idempotent: a cleanup container that already exists is not added twice.
//!
//! Requires the GA shape of the subresource (Kubernetes 1.23+, `PATCH` with a Pod); older
//! servers (1.20's alpha `EphemeralContainers` kind) are refused with a clear error.

use k8s_openapi::api::core::v1::{Capabilities, EphemeralContainer, Pod, SecurityContext};
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use super::client::{is_not_found, op_err};
use super::pods::PodRef;
use super::Shared;
use crate::targets::TargetError;

/// Oldest Kubernetes minor version whose ephemeral-container API gameday speaks.
pub const MIN_MINOR: u32 = 23;

/// What happened when adding an ephemeral container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The container was added now.
    Added,
    /// A container of that name already exists (an earlier, interrupted attempt).
    AlreadyPresent,
    /// The pod is gone or was replaced: there is nothing to act on.
    PodGone,
    /// The container this one would clean up after was never added: nothing to undo.
    NothingToUndo,
}

/// Parse the server's minor version (`"30"`, `"27+"`) as Kubernetes reports it.
pub fn parse_minor(minor: &str) -> Option<u32> {
    minor
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// Refuse servers whose ephemeral-container API is the old alpha shape or absent.
pub async fn ensure_supported(shared: &Shared) -> Result<(), TargetError> {
    let v = shared
        .client()
        .await?
        .apiserver_version()
        .await
        .map_err(|e| op_err("read server version", "cluster", e))?;
    match parse_minor(&v.minor) {
        Some(m) if v.major == "1" && m >= MIN_MINOR => Ok(()),
        _ => Err(TargetError::Invalid(format!(
            "the API server is Kubernetes {}.{}: ephemeral containers (GA shape) need 1.{MIN_MINOR} or newer, so network and per-pod faults cannot run there",
            v.major, v.minor
        ))),
    }
}

/// An ephemeral container running `script` with `sh -c`, with extra capabilities, and
/// optionally sharing one container's process namespace.
pub fn container(
    name: &str,
    image: &str,
    script: String,
    caps: &[&str],
    target_container: Option<&str>,
) -> EphemeralContainer {
    EphemeralContainer {
        name: name.to_string(),
        image: Some(image.to_string()),
        command: Some(vec!["sh".into(), "-c".into(), script]),
        target_container_name: target_container.map(str::to_string),
        security_context: (!caps.is_empty()).then(|| SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(caps.iter().map(|c| c.to_string()).collect()),
                drop: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Add `ec` to the pod unless it is already there, or the pod is gone or replaced. With
/// `requires`, add it only if that (injecting) container is in the pod: a cleanup must not
/// touch a pod the fault never reached.
pub async fn add(
    shared: &Shared,
    pod: &PodRef,
    ec: EphemeralContainer,
    requires: Option<&str>,
) -> Result<Added, TargetError> {
    let api: Api<Pod> = Api::namespaced(shared.client().await?, &pod.namespace);
    let key = format!("{}/{}", pod.namespace, pod.name);
    let current = match api.get(&pod.name).await {
        Ok(p) => p,
        Err(e) if is_not_found(&e) => return Ok(Added::PodGone),
        Err(e) => return Err(op_err("get pod", key, e)),
    };
    if !pod.uid.is_empty() && current.metadata.uid.as_deref() != Some(pod.uid.as_str()) {
        return Ok(Added::PodGone);
    }
    let has = |name: &str| {
        current
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .is_some_and(|ecs| ecs.iter().any(|c| c.name == name))
    };
    if has(&ec.name) {
        return Ok(Added::AlreadyPresent);
    }
    if let Some(r) = requires {
        if !has(r) {
            return Ok(Added::NothingToUndo);
        }
    }
    let name = ec.name.clone();
    let patch = json!({ "spec": { "ephemeralContainers": [ec] } });
    match api
        .patch_ephemeral_containers(&pod.name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(_) => Ok(Added::Added),
        Err(e) => Err(op_err(
            &format!("add ephemeral container {name} to pod"),
            key,
            e,
        )),
    }
}

/// Quote a string for `sh` (single quotes; an embedded quote becomes `'\''`).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions_parse_with_provider_suffixes() {
        assert_eq!(parse_minor("20"), Some(20));
        assert_eq!(parse_minor("27+"), Some(27));
        assert_eq!(parse_minor(""), None);
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn container_carries_capabilities_and_target() {
        let c = container("x", "img", "true".into(), &["NET_ADMIN"], Some("app"));
        assert_eq!(c.target_container_name.as_deref(), Some("app"));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["securityContext"]["capabilities"]["add"][0], "NET_ADMIN");
        assert_eq!(v["command"][2], "true");
    }
}
