//! A scripted Kubernetes API server for unit-level tests of the Kubernetes target, built
//! on the `kube` crate's documented mock pattern: a `tower_test::mock::pair` behind
//! `Client::new`. Each [`Step`] is one expected request (method, path, query parameters)
//! and the answer to give; every request is recorded so a test can assert bodies, and
//! [`Mock::done`] fails if a request was expected but not made, or made but not expected.

use std::collections::BTreeMap;

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// One request the code under test must make, and the answer.
pub struct Step {
    /// HTTP method.
    pub method: &'static str,
    /// Exact path, without the query.
    pub path: String,
    /// Query parameters that must be present with these values.
    pub query: Vec<(&'static str, String)>,
    /// Status of the answer.
    pub status: u16,
    /// Body of the answer.
    pub body: Value,
}

/// Shorthand constructors.
pub fn step(method: &'static str, path: impl Into<String>, body: Value) -> Step {
    Step {
        method,
        path: path.into(),
        query: vec![],
        status: 200,
        body,
    }
}

impl Step {
    /// Require a query parameter.
    pub fn q(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }
    /// Answer with an API error (a `Status` object) instead.
    pub fn fail(mut self, code: u16, reason: &str) -> Self {
        self.status = code;
        self.body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("mock: {reason}"),
            "reason": reason, "code": code
        });
        self
    }
    /// Replace the error message (after [`Step::fail`]).
    pub fn message(mut self, m: &str) -> Self {
        self.body["message"] = serde_json::Value::String(m.to_string());
        self
    }
    /// Answer with this status code.
    pub fn status(mut self, code: u16) -> Self {
        self.status = code;
        self
    }
}

/// A request the mock saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// JSON body (Null when empty).
    pub body: Value,
}

/// The running mock.
pub struct Mock {
    /// The client to hand to the code under test.
    pub client: Client,
    task: JoinHandle<Vec<Seen>>,
}

/// Start a mock API server that expects exactly `steps`, in order.
pub fn serve(steps: Vec<Step>) -> Mock {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (i, s) in steps.into_iter().enumerate() {
            let Some((req, send)) = handle.next_request().await else {
                panic!(
                    "request #{i} ({} {}) was expected but the client was dropped; seen: {seen:#?}",
                    s.method, s.path
                );
            };
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let query: BTreeMap<String, String> =
                form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            let got = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query,
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap_or_default().to_string()),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            assert_eq!(
                (got.method.as_str(), got.path.as_str()),
                (s.method, s.path.as_str()),
                "request #{i}: unexpected request {got:#?}"
            );
            for (k, v) in &s.query {
                assert_eq!(
                    got.query.get(*k),
                    Some(v),
                    "request #{i} {} {}: query {k}",
                    s.method,
                    s.path
                );
            }
            seen.push(got);
            let resp = Response::builder()
                .status(s.status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&s.body).unwrap()))
                .unwrap();
            send.send_response(resp);
        }
        if let Some((req, _)) = handle.next_request().await {
            panic!(
                "unexpected extra request {} {}; seen so far: {seen:#?}",
                req.method(),
                req.uri()
            );
        }
        seen
    });
    Mock {
        client: Client::new(svc, "default"),
        task,
    }
}

impl Mock {
    /// Wait for the script to finish. Drop every clone of the client first (the target,
    /// the faults): the mock asserts that no request follows the last step.
    pub async fn done(self) -> Vec<Seen> {
        drop(self.client);
        match tokio::time::timeout(std::time::Duration::from_secs(20), self.task).await {
            Ok(Ok(seen)) => seen,
            Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
            Err(_) => panic!("mock api server: the code under test stopped before the script ended (a client clone still alive?)"),
        }
    }
}

/// A Pod object as the API server returns it.
pub fn pod(ns: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}"), "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": "rs", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

/// A list object with an optional continue token.
pub fn list(kind: &str, items: Vec<Value>, cont: Option<&str>) -> Value {
    json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": {"resourceVersion": "1", "continue": cont.unwrap_or("")},
        "items": items
    })
}

/// A Node object.
pub fn node(name: &str, unschedulable: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"pool": "a"}}, "spec": {"unschedulable": unschedulable}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
}

/// A `Status` success answer.
pub fn status_ok() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// `/version` of a server.
pub fn version(minor: &str) -> Value {
    json!({"major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0"), "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""})
}
