//! Port-forwards for the load generator: while a run lasts, `127.0.0.1:<local_port>` leads
//! to a Service's pods through the API server's `pods/portforward` subresource (what
//! `kubectl port-forward` does), so a gameday run from a laptop or CI measures the app as
//! its users reach it, without a LoadBalancer. Started by [`Target::start`], stopped by
//! [`Target::shutdown`].
//!
//! `kubectl port-forward svc/x` pins one pod for its whole life; here every new connection
//! resolves the Service's ready endpoints again and picks one at random, so a pod killed by
//! the gameday costs only the connections it held, as behind a real Service.
//!
//! [`Target::start`]: crate::targets::Target::start
//! [`Target::shutdown`]: crate::targets::Target::shutdown

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use rand::seq::SliceRandom;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::client::op_err;
use super::spec::PortForwardSpec;
use super::Shared;
use crate::targets::TargetError;

/// A running forward: its local address and the accept loop.
pub struct Forward {
    /// Where it listens.
    pub local: SocketAddr,
    task: JoinHandle<()>,
}

impl Forward {
    /// Stop accepting; connections already open end when their copy task sees the drop.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bind the local port and serve connections until stopped.
pub async fn start(
    shared: std::sync::Arc<Shared>,
    spec: PortForwardSpec,
) -> Result<Forward, TargetError> {
    let listener = TcpListener::bind(("127.0.0.1", spec.local_port))
        .await
        .map_err(|e| TargetError::Op {
            action: "listen for port-forward".into(),
            object: format!("127.0.0.1:{}", spec.local_port),
            source: anyhow::Error::new(e),
        })?;
    let local = listener.local_addr().map_err(|e| TargetError::Op {
        action: "listen for port-forward".into(),
        object: format!("127.0.0.1:{}", spec.local_port),
        source: anyhow::Error::new(e),
    })?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            let spec = spec.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(&shared, &spec, tcp).await {
                    tracing::warn!(service = %format!("{}/{}", spec.namespace, spec.service), error = %e, "port-forward connection failed");
                }
            });
        }
    });
    Ok(Forward { local, task })
}

/// The ready pods behind a Service port, with the container port each listens on.
pub fn backends(svc: &Service, eps: &Endpoints, port: u16) -> Result<Vec<(String, u16)>, String> {
    let sp = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.port == i32::from(port)))
        .ok_or_else(|| format!("the Service has no port {port}"))?;
    let mut out = Vec::new();
    for subset in eps.subsets.iter().flatten() {
        let Some(ep) =
            subset.ports.iter().flatten().find(|p| {
                p.name == sp.name || subset.ports.as_ref().is_some_and(|ps| ps.len() == 1)
            })
        else {
            continue;
        };
        for a in subset.addresses.iter().flatten() {
            if let Some(r) = a
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
            {
                if let Some(name) = &r.name {
                    out.push((name.clone(), ep.port as u16));
                }
            }
        }
    }
    if out.is_empty() {
        let hint = match &sp.target_port {
            Some(IntOrString::String(n)) => format!(" (target port `{n}`)"),
            _ => String::new(),
        };
        return Err(format!(
            "the Service has no ready pod behind port {port}{hint}"
        ));
    }
    Ok(out)
}

async fn serve(
    shared: &Shared,
    spec: &PortForwardSpec,
    mut tcp: TcpStream,
) -> Result<(), TargetError> {
    let client = shared.client().await?;
    let object = format!("service {}/{}", spec.namespace, spec.service);
    let svc = Api::<Service>::namespaced(client.clone(), &spec.namespace)
        .get(&spec.service)
        .await
        .map_err(|e| op_err("get", &object, e))?;
    let eps = Api::<Endpoints>::namespaced(client.clone(), &spec.namespace)
        .get(&spec.service)
        .await
        .map_err(|e| op_err("get endpoints of", &object, e))?;
    let all = backends(&svc, &eps, spec.port).map_err(|reason| TargetError::Op {
        action: "port-forward to".into(),
        object: object.clone(),
        source: anyhow::anyhow!(reason),
    })?;
    let (pod, port) = all
        .choose(&mut rand::thread_rng())
        .cloned()
        .expect("backends is never empty");
    let pods: Api<Pod> = Api::namespaced(client, &spec.namespace);
    let key = format!("pod {}/{pod} port {port}", spec.namespace);
    let mut pf = pods
        .portforward(&pod, &[port])
        .await
        .map_err(|e| op_err("port-forward to", &key, e))?;
    let mut upstream = pf.take_stream(port).ok_or_else(|| TargetError::Op {
        action: "port-forward to".into(),
        object: key.clone(),
        source: anyhow::anyhow!("the API server opened no stream for the port"),
    })?;
    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await;
    drop(upstream);
    pf.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_follow_the_service_port_to_ready_pods() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "admin", "port": 9000}]}
        }))
        .unwrap();
        let eps: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "web-1"}}],
                "notReadyAddresses": [{"ip": "10.0.0.2", "targetRef": {"kind": "Pod", "name": "web-2"}}],
                "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9000}]
            }]
        }))
        .unwrap();
        assert_eq!(
            backends(&svc, &eps, 80).unwrap(),
            [("web-1".to_string(), 8080)]
        );
        assert_eq!(
            backends(&svc, &eps, 9000).unwrap(),
            [("web-1".to_string(), 9000)]
        );
        assert!(backends(&svc, &eps, 81).unwrap_err().contains("no port 81"));
        let empty: Endpoints =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "web"}})).unwrap();
        assert!(backends(&svc, &empty, 80)
            .unwrap_err()
            .contains("no ready pod"));
    }
}
