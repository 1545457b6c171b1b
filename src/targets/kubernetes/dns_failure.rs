//! `dns_failure`: names stop resolving, two ways.
//!
//! - **Cluster scope** patches CoreDNS's Corefile: a `template` block per name, inserted at
//!   the top of every server block, answers the name (and its subdomains) with NXDOMAIN or
//!   SERVFAIL. The original Corefile is kept in the ledger and written back byte for byte
//!   on revert. CoreDNS picks the change up through its `reload` plugin, after the kubelet
//!   has synced the ConfigMap volume: typically within a minute or two, which the scenario
//!   should allow for (preflight warns when `reload` is missing from the Corefile).
//! - **Pod scope** adds an ephemeral container with NET_ADMIN to each selected pod that
//!   drops the pod's DNS queries for the names (`iptables` string match on the name's wire
//!   form, UDP and TCP port 53), until the deadline or revert.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{is_not_found, op_err};
use super::ephemeral::{self, sh_quote, Added};
use super::network_latency::{instance_name, seconds_until};
use super::pods::{resolve_pods, PodRef};
use super::spec::{DnsFailureSpec, DnsRcode, DnsScope};
use super::{parse_undo, Shared};
use crate::targets::{Fault, Prepared, Resolution, TargetError};

/// The kind as written in scenarios.
pub const KIND: &str = "dns_failure";

/// Marks the lines gameday inserts, so revert can tell its own patch from someone else's
/// edit.
pub const MARKER: &str = "# gameday dns_failure";

/// The ledger record, one shape per scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum DnsFailureUndo {
    /// The Corefile before and after the patch.
    Cluster {
        /// ConfigMap namespace.
        namespace: String,
        /// ConfigMap name.
        configmap: String,
        /// Key of the Corefile.
        key: String,
        /// The Corefile before the fault, restored byte for byte.
        original: String,
        /// The Corefile gameday writes.
        patched: String,
    },
    /// Per-pod iptables rules.
    Pod {
        /// Pods hit.
        pods: Vec<PodRef>,
        /// Name of the injecting ephemeral container; also the iptables chain's suffix.
        container: String,
        /// Image for the cleanup container.
        image: String,
        /// The names blocked.
        names: Vec<String>,
    },
}

/// A bound `dns_failure` fault.
pub struct DnsFailure {
    shared: Arc<Shared>,
    name: String,
    spec: DnsFailureSpec,
}

/// The zone and optional regex a name becomes in a CoreDNS `template` block.
fn template_block(name: &str, rcode: DnsRcode, indent: &str) -> String {
    let rcode = match rcode {
        DnsRcode::Nxdomain => "NXDOMAIN",
        DnsRcode::Servfail => "SERVFAIL",
    };
    let (zone, regex) = match name.strip_prefix("*.") {
        Some(base) => {
            let base = base.trim_end_matches('.');
            (
                base.to_string(),
                Some(format!("^.+\\.{}\\.$", base.replace('.', "\\."))),
            )
        }
        None => (name.trim_end_matches('.').to_string(), None),
    };
    let mut b = format!("{indent}template ANY ANY {zone} {{\n");
    if let Some(r) = regex {
        b.push_str(&format!(
            "{indent}    match \"{r}\"\n{indent}    fallthrough\n"
        ));
    }
    b.push_str(&format!("{indent}    rcode {rcode}\n{indent}}}\n"));
    b
}

/// Insert template blocks for `names` at the top of every top-level server block of a
/// Corefile. Pure, so the exact bytes are tested; the rest of the file is left untouched.
pub fn patch_corefile(
    original: &str,
    names: &[String],
    rcode: DnsRcode,
    fault: &str,
) -> Result<String, String> {
    let mut out = String::with_capacity(original.len() + 256);
    let mut depth: i32 = 0;
    let mut blocks = 0;
    for line in original.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("");
        let opens = code.matches('{').count() as i32;
        let closes = code.matches('}').count() as i32;
        out.push_str(line);
        if depth == 0 && opens > closes {
            if !line.ends_with('\n') {
                out.push('\n');
            }
            blocks += 1;
            out.push_str(&format!("    {MARKER} {fault} begin\n"));
            for n in names {
                out.push_str(&template_block(n, rcode, "    "));
            }
            out.push_str(&format!("    {MARKER} {fault} end\n"));
        }
        depth += opens - closes;
    }
    if blocks == 0 {
        return Err("the Corefile has no server block (`.:53 { ... }`) to patch".into());
    }
    if original.contains(MARKER) {
        return Err("the Corefile already carries a gameday patch (an earlier run not reverted? run `gameday recover`)".into());
    }
    Ok(out)
}

/// The iptables chain of one pod-scope fault instance (at most 28 characters).
fn chain(container: &str) -> String {
    let suffix = container.rsplit('-').next().unwrap_or(container);
    format!("GAMEDAY-DNS-{suffix}")
}

/// A DNS name in wire form as an iptables `--hex-string`: `example.com` becomes
/// `|07|example|03|com|00|`, which matches the name and every subdomain in a query.
pub fn wire_hex(name: &str) -> String {
    let bare = name
        .strip_prefix("*.")
        .unwrap_or(name)
        .trim_end_matches('.');
    let mut s = String::new();
    for label in bare.split('.') {
        s.push_str(&format!(
            "|{:02x}|{}",
            label.len(),
            label.to_ascii_lowercase()
        ));
    }
    s.push_str("|00|");
    s
}

/// The pod-scope injecting script: a chain dropping DNS queries for the names, hooked into
/// OUTPUT, removed at the deadline (or on TERM).
pub fn pod_inject_script(container: &str, names: &[String], seconds: u64) -> String {
    let c = chain(container);
    let mut s = format!("iptables -N {c} || exit 1\n");
    for n in names {
        for proto in ["udp", "tcp"] {
            s.push_str(&format!(
                "iptables -A {c} -p {proto} --dport 53 -m string --algo bm --icase --hex-string {} -j DROP || exit 1\n",
                sh_quote(&wire_hex(n))
            ));
        }
    }
    s.push_str(&format!(
        "iptables -I OUTPUT -j {c} || exit 1\n\
         cleanup() {{ {undo} exit 0; }}\n\
         trap cleanup TERM INT\n\
         sleep {seconds} &\n\
         wait $!\n\
         cleanup\n",
        undo = pod_undo_script(container).replace('\n', " ")
    ));
    s
}

/// The pod-scope cleanup: unhook and delete the chain; harmless when already gone.
pub fn pod_undo_script(container: &str) -> String {
    let c = chain(container);
    format!(
        "iptables -D OUTPUT -j {c} 2>/dev/null; iptables -F {c} 2>/dev/null; iptables -X {c} 2>/dev/null; true;\n"
    )
}

impl DnsFailure {
    /// Bind the spec to a target.
    pub fn new(shared: Arc<Shared>, name: String, spec: DnsFailureSpec) -> Self {
        Self { shared, name, spec }
    }

    async fn corefile(&self) -> Result<(ConfigMap, String), TargetError> {
        let r = &self.spec.coredns;
        let api: Api<ConfigMap> = Api::namespaced(self.shared.client().await?, &r.namespace);
        let key = format!("{}/{}", r.namespace, r.configmap);
        let cm = api
            .get(&r.configmap)
            .await
            .map_err(|e| op_err("get configmap", &key, e))?;
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .cloned()
            .ok_or_else(|| TargetError::Selection {
                fault: self.name.clone(),
                reason: format!("configmap {key} has no `{}` key", r.key),
            })?;
        Ok((cm, text))
    }

    async fn resolve_inner(&self) -> Result<(Option<Vec<PodRef>>, Resolution), TargetError> {
        let s = &self.spec;
        match s.scope {
            DnsScope::Cluster => {
                let (_, text) = self.corefile().await?;
                patch_corefile(&text, &s.names, s.rcode, &self.name).map_err(|reason| {
                    TargetError::Selection {
                        fault: self.name.clone(),
                        reason,
                    }
                })?;
                let mut notes = vec![format!(
                    "names failing cluster-wide: {}",
                    s.names.join(", ")
                )];
                if !text.contains("reload") {
                    notes.push("the Corefile has no `reload` plugin: CoreDNS will not pick up the patch until its pods restart".into());
                } else {
                    notes.push("CoreDNS applies the patch through its `reload` plugin after the kubelet syncs the ConfigMap (typically within 1-2 minutes)".into());
                }
                Ok((
                    None,
                    Resolution {
                        targets: vec![format!(
                            "configmap {}/{}",
                            s.coredns.namespace, s.coredns.configmap
                        )],
                        eligible: 1,
                        cap: None,
                        notes,
                    },
                ))
            }
            DnsScope::Pod => {
                let sel = s.selector.clone().unwrap_or_default();
                let (pods, res) = resolve_pods(
                    &self.shared,
                    &self.name,
                    &sel,
                    s.mode,
                    s.value,
                    s.max_targets,
                )
                .await?;
                Ok((Some(pods), res))
            }
        }
    }
}

#[async_trait]
impl Fault for DnsFailure {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn resolve(&self) -> Result<Resolution, TargetError> {
        Ok(self.resolve_inner().await?.1)
    }

    async fn prepare(&self) -> Result<Prepared, TargetError> {
        let s = &self.spec;
        s.validate()
            .map_err(|e| TargetError::Invalid(format!("fault {}: {e}", self.name)))?;
        let (pods, res) = self.resolve_inner().await?;
        let undo = match pods {
            None => {
                let (_, original) = self.corefile().await?;
                let patched = patch_corefile(&original, &s.names, s.rcode, &self.name)
                    .map_err(TargetError::Invalid)?;
                DnsFailureUndo::Cluster {
                    namespace: s.coredns.namespace.clone(),
                    configmap: s.coredns.configmap.clone(),
                    key: s.coredns.key.clone(),
                    original,
                    patched,
                }
            }
            Some(pods) => DnsFailureUndo::Pod {
                pods,
                container: instance_name("gameday-dns"),
                image: s.image.clone(),
                names: s.names.clone(),
            },
        };
        Ok(Prepared {
            targets: res.targets,
            undo: serde_json::to_value(undo).expect("undo serializes"),
            irreversible: false,
        })
    }

    async fn inject(&self, prepared: &Prepared, deadline: SystemTime) -> Result<(), TargetError> {
        match parse_undo::<DnsFailureUndo>(KIND, &prepared.undo)? {
            DnsFailureUndo::Cluster {
                namespace,
                configmap,
                key,
                original,
                patched,
            } => {
                let (cm, current) = self.corefile().await?;
                if current != original {
                    return Err(TargetError::Op {
                        action: "patch corefile".into(),
                        object: format!("configmap {namespace}/{configmap}"),
                        source: anyhow::anyhow!("the Corefile changed between prepare and inject; nothing was patched, run again"),
                    });
                }
                // The resourceVersion makes the write conditional: if anyone changed the
                // ConfigMap since we read it, the API server refuses (409) and nothing is
                // overwritten.
                let patch = json!({
                    "metadata": { "resourceVersion": cm.metadata.resource_version },
                    "data": { key: patched },
                });
                let api: Api<ConfigMap> = Api::namespaced(self.shared.client().await?, &namespace);
                api.patch(&configmap, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| {
                        op_err("patch configmap", format!("{namespace}/{configmap}"), e)
                    })?;
                tracing::info!(fault = %self.name, configmap = %format!("{namespace}/{configmap}"), "corefile patched");
                Ok(())
            }
            DnsFailureUndo::Pod {
                pods,
                container,
                image,
                names,
            } => {
                ephemeral::ensure_supported(&self.shared).await?;
                let script = pod_inject_script(&container, &names, seconds_until(deadline));
                for pod in &pods {
                    let ec = ephemeral::container(
                        &container,
                        &image,
                        script.clone(),
                        &["NET_ADMIN"],
                        None,
                    );
                    if let Err(e) = ephemeral::add(&self.shared, pod, ec, None).await {
                        if let Err(re) = revert(&self.shared, &prepared.undo).await {
                            tracing::error!(fault = %self.name, error = %re, "cleanup after a failed inject failed; the ledger keeps it for recover");
                        }
                        return Err(e);
                    }
                }
                Ok(())
            }
        }
    }
}

/// Undo a DNS failure from its ledger record. Cluster scope: write the original Corefile
/// back byte for byte if the current one carries gameday's patch; succeed if it is already
/// the original; refuse (and say where the original is) if someone else rewrote it.
pub async fn revert(shared: &Shared, undo: &serde_json::Value) -> Result<(), TargetError> {
    match parse_undo::<DnsFailureUndo>(KIND, undo)? {
        DnsFailureUndo::Cluster {
            namespace,
            configmap,
            key,
            original,
            patched: _,
        } => {
            let api: Api<ConfigMap> = Api::namespaced(shared.client().await?, &namespace);
            let object = format!("{namespace}/{configmap}");
            let cm = match api.get(&configmap).await {
                Ok(cm) => cm,
                Err(e) if is_not_found(&e) => {
                    tracing::warn!(configmap = %object, "configmap is gone; nothing to restore");
                    return Ok(());
                }
                Err(e) => return Err(op_err("get configmap", object, e)),
            };
            let current = cm.data.as_ref().and_then(|d| d.get(&key)).cloned();
            if current.as_deref() == Some(original.as_str()) {
                return Ok(());
            }
            if !current.as_deref().unwrap_or("").contains(MARKER) {
                // `Invalid`, not `Op`: a deliberate refusal that no retry can change.
                return Err(TargetError::Invalid(format!("restore corefile configmap {object}: the Corefile no longer carries gameday's patch: someone else changed it during the fault, so gameday will not overwrite it; the original is in the ledger's undo record (`original`)")));
            }
            let patch = json!({
                "metadata": { "resourceVersion": cm.metadata.resource_version },
                "data": { key: original },
            });
            api.patch(&configmap, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| op_err("restore configmap", object, e))?;
            tracing::info!(configmap = %format!("{namespace}/{configmap}"), "corefile restored");
            Ok(())
        }
        DnsFailureUndo::Pod {
            pods,
            container,
            image,
            names: _,
        } => {
            let undo_name = format!("{container}-undo");
            for pod in &pods {
                let ec = ephemeral::container(
                    &undo_name,
                    &image,
                    pod_undo_script(&container),
                    &["NET_ADMIN"],
                    None,
                );
                let added: Added = ephemeral::add(shared, pod, ec, Some(&container)).await?;
                tracing::info!(pod = %pod.target(), ?added, "dns cleanup container");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBEADM: &str = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n";

    #[test]
    fn corefile_patch_inserts_templates_and_keeps_the_rest() {
        let names = vec![
            "payments.shop.svc.cluster.local".to_string(),
            "*.example.com".to_string(),
        ];
        let p = patch_corefile(KUBEADM, &names, DnsRcode::Servfail, "dns").unwrap();
        assert!(p.starts_with(".:53 {\n    # gameday dns_failure dns begin\n    template ANY ANY payments.shop.svc.cluster.local {\n        rcode SERVFAIL\n    }\n"), "{p}");
        assert!(p.contains("    template ANY ANY example.com {\n        match \"^.+\\.example\\.com\\.$\"\n        fallthrough\n        rcode SERVFAIL\n    }\n"), "{p}");
        // Removing the inserted lines gives the original back byte for byte.
        let start = p.find("    # gameday").unwrap();
        let end_marker = "# gameday dns_failure dns end\n";
        let end = p.find(end_marker).unwrap() + end_marker.len();
        assert_eq!(format!("{}{}", &p[..start], &p[end..]), KUBEADM);
    }

    #[test]
    fn corefile_without_server_block_or_already_patched_is_refused() {
        assert!(patch_corefile("# nothing\n", &["a.b".into()], DnsRcode::Nxdomain, "x").is_err());
        let p = patch_corefile(KUBEADM, &["a.b".into()], DnsRcode::Nxdomain, "x").unwrap();
        assert!(patch_corefile(&p, &["a.b".into()], DnsRcode::Nxdomain, "x")
            .unwrap_err()
            .contains("recover"));
    }

    #[test]
    fn every_top_level_block_is_patched() {
        let two =
            "example.org:53 {\n    forward . 1.1.1.1\n}\n.:53 {\n    forward . /etc/resolv.conf\n}";
        let p = patch_corefile(two, &["x.y".into()], DnsRcode::Nxdomain, "f").unwrap();
        assert_eq!(p.matches("template ANY ANY x.y").count(), 2);
    }

    #[test]
    fn wire_form_matches_labels() {
        assert_eq!(wire_hex("Example.COM."), "|07|example|03|com|00|");
        assert_eq!(wire_hex("*.a.io"), "|01|a|02|io|00|");
    }

    #[test]
    fn pod_scripts_hook_and_unhook_one_chain() {
        let s = pod_inject_script("gameday-dns-0a1b2c3d", &["a.io".into()], 30);
        assert!(
            s.starts_with("iptables -N GAMEDAY-DNS-0a1b2c3d || exit 1\n"),
            "{s}"
        );
        assert_eq!(
            s.matches("--hex-string '|01|a|02|io|00|' -j DROP").count(),
            2
        );
        assert!(s.contains("iptables -I OUTPUT -j GAMEDAY-DNS-0a1b2c3d"));
        assert!(s.contains("sleep 30 &"));
        assert!(
            pod_undo_script("gameday-dns-0a1b2c3d").contains("iptables -X GAMEDAY-DNS-0a1b2c3d")
        );
    }
}
