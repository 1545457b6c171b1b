//! Spot interruptions on a laptop: an EC2 instance-metadata-compatible endpoint per sandbox
//! "instance" (a group of replicas), and the schedule that notices then terminates it.
//!
//! EC2 gives a spot instance two minutes' notice through instance metadata
//! (`/latest/meta-data/spot/instance-action`: 404 until interrupted, then
//! `{"action":"terminate","time":"2026-11-21T12:00:00Z"}`), then stops or terminates it.
//! Services that handle this well poll that path and drain. The sandbox serves the same paths
//! (and the IMDSv2 token dance, and the legacy `spot/termination-time`) on 127.0.0.1, one
//! endpoint per instance, whose URL replicas get as `GAMEDAY_METADATA_URL`; so the code that
//! watches for the notice in the demo is the code one would run on EC2.
//!
//! Terminating the processes belongs to the fleet supervisor: this module asks for it through
//! [`InstanceTerminator`], which the fleet implements.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::targets::TargetError;

/// The path EC2 serves the spot notice on.
pub const INSTANCE_ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";
/// The legacy path (time only), still read by older tooling.
pub const TERMINATION_TIME_PATH: &str = "/latest/meta-data/spot/termination-time";

/// Errors from a metadata endpoint.
#[derive(Debug, thiserror::Error)]
pub enum SpotError {
    /// The endpoint could not bind its address.
    #[error("metadata endpoint of instance {instance} cannot listen on {addr}: {source}")]
    Bind {
        /// The sandbox instance.
        instance: String,
        /// The address tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What EC2 says it will do to the instance.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SpotAction {
    /// The instance goes away for good (the usual case).
    #[default]
    Terminate,
    /// The instance is stopped (persistent requests); in the sandbox its processes end alike.
    Stop,
    /// The instance hibernates; in the sandbox its processes end alike.
    Hibernate,
}

impl SpotAction {
    /// The word EC2 puts in the notice's `action` field.
    pub fn as_str(self) -> &'static str {
        match self {
            SpotAction::Terminate => "terminate",
            SpotAction::Stop => "stop",
            SpotAction::Hibernate => "hibernate",
        }
    }
}

/// An interruption notice as served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// What will happen.
    pub action: SpotAction,
    /// When it will happen.
    pub time: OffsetDateTime,
}

impl Notice {
    /// The body EC2 serves at [`INSTANCE_ACTION_PATH`].
    pub fn to_json(&self) -> String {
        serde_json::json!({ "action": self.action.as_str(), "time": ec2_time(self.time) })
            .to_string()
    }
}

/// EC2's time format in metadata: RFC 3339, UTC, whole seconds (`2026-11-21T12:00:00Z`).
pub fn ec2_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What the fleet does when a notice expires: end the instance's processes.
#[async_trait::async_trait]
pub trait InstanceTerminator: Send + Sync {
    /// End every process of `instance`; return what was ended (`pid 4242 (backend-1)`).
    /// The supervisor may bring replacements up elsewhere.
    async fn terminate_instance(
        &self,
        instance: &str,
        action: SpotAction,
    ) -> Result<Vec<String>, TargetError>;

    /// The replicas out of service now, as `(service, replica index)`: not running or not
    /// ready. The blast-radius cap counts them (see `spot_fault`). A terminator that knows
    /// no fleet (tests' own) reports none.
    fn out_of_service(&self) -> Vec<(String, u32)> {
        Vec::new()
    }
}

struct EndpointState {
    instance: String,
    notice: RwLock<Option<Notice>>,
}

/// One running metadata endpoint. Cheap to clone.
#[derive(Clone)]
pub struct SpotHandle {
    addr: SocketAddr,
    state: Arc<EndpointState>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl std::fmt::Debug for SpotHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpotHandle")
            .field("instance", &self.state.instance)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The metadata endpoint component. See the module documentation.
pub struct SpotEndpoint;

impl SpotEndpoint {
    /// Serve instance metadata for `instance` on `listen` (port 0 picks one) until `cancel`.
    pub async fn start(
        instance: &str,
        listen: SocketAddr,
        cancel: CancellationToken,
    ) -> Result<SpotHandle, SpotError> {
        let bind_err = |source| SpotError::Bind {
            instance: instance.to_string(),
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let state = Arc::new(EndpointState {
            instance: instance.to_string(),
            notice: RwLock::new(None),
        });
        let tracker = TaskTracker::new();
        tracker.spawn(serve(
            listener,
            state.clone(),
            cancel.clone(),
            tracker.clone(),
        ));
        Ok(SpotHandle {
            addr,
            state,
            cancel,
            tracker,
        })
    }
}

impl SpotHandle {
    /// The base URL replicas get as `GAMEDAY_METADATA_URL` (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The sandbox instance this endpoint speaks for.
    pub fn instance(&self) -> &str {
        &self.state.instance
    }

    /// Start serving an interruption notice.
    pub fn notice(&self, notice: Notice) {
        *self.state.notice.write().unwrap_or_else(|p| p.into_inner()) = Some(notice);
    }

    /// The notice being served, if any.
    pub fn current_notice(&self) -> Option<Notice> {
        *self.state.notice.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Serve 404 again: for a replacement instance that reuses the name.
    pub fn reset(&self) {
        *self.state.notice.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Stop serving and wait for open requests to end.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn serve(
    listener: TcpListener,
    state: Arc<EndpointState>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(error) => {
                    tracing::warn!(%error, "metadata endpoint accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        resp.headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    resp
}

fn not_found() -> Response<Full<Bytes>> {
    // EC2 answers 404 with a small HTML page; clients only look at the status.
    text(StatusCode::NOT_FOUND, "Not Found", "text/plain")
}

fn route(state: &EndpointState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let notice = *state.notice.read().unwrap_or_else(|p| p.into_inner());
    match (req.method(), req.uri().path()) {
        // IMDSv2: any client may get a token; the sandbox does not check it on reads, as
        // EC2 does not when IMDSv1 is allowed.
        (&Method::PUT, "/latest/api/token") => {
            text(StatusCode::OK, "gameday-sandbox-token", "text/plain")
        }
        (&Method::GET, INSTANCE_ACTION_PATH) => match notice {
            Some(n) => text(StatusCode::OK, n.to_json(), "application/json"),
            None => not_found(),
        },
        (&Method::GET, TERMINATION_TIME_PATH) => match notice {
            Some(n) => text(StatusCode::OK, ec2_time(n.time), "text/plain"),
            None => not_found(),
        },
        (&Method::GET, "/latest/meta-data/instance-id") => {
            text(StatusCode::OK, state.instance.clone(), "text/plain")
        }
        _ => not_found(),
    }
}

/// The metadata endpoints of a local fleet by instance name, filled by the fleet.
#[derive(Debug, Clone, Default)]
pub struct SpotRegistry {
    inner: Arc<RwLock<BTreeMap<String, SpotHandle>>>,
}

impl SpotRegistry {
    /// Register the endpoint of `instance`.
    pub fn insert(&self, handle: SpotHandle) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handle.instance().to_string(), handle);
    }

    /// The endpoint of `instance`.
    pub fn get(&self, instance: &str) -> Option<SpotHandle> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .cloned()
    }

    /// Instance names, sorted.
    pub fn instances(&self) -> Vec<String> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Remove the endpoint of `instance`, returning it.
    pub fn remove(&self, instance: &str) -> Option<SpotHandle> {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance)
    }
}

/// Serve the notice on `endpoint` now, then after `notice_period` ask `terminator` to end
/// the instance. Returns at once; the returned task yields what was terminated. If `cancel`
/// fires first (the run is stopping and the fleet with it), nothing is terminated.
pub fn interrupt(
    endpoint: &SpotHandle,
    notice_period: Duration,
    action: SpotAction,
    terminator: Arc<dyn InstanceTerminator>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<Result<Vec<String>, TargetError>> {
    let time = OffsetDateTime::now_utc() + notice_period;
    endpoint.notice(Notice { action, time });
    let instance = endpoint.instance().to_string();
    let endpoint = endpoint.clone();
    tracing::info!(%instance, action = action.as_str(), notice = ?notice_period, "spot interruption noticed");
    tokio::spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(Vec::new()),
            _ = tokio::time::sleep(notice_period) => {}
        }
        let ended = terminator.terminate_instance(&instance, action).await?;
        // What comes up under this name next is a fresh instance, with no notice.
        endpoint.reset();
        tracing::info!(%instance, ?ended, "spot instance terminated");
        Ok(ended)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_reads_like_ec2s() {
        let n = Notice {
            action: SpotAction::Terminate,
            time: time::macros::datetime!(2026-11-21 12:34:56.789 UTC),
        };
        assert_eq!(
            n.to_json(),
            r#"{"action":"terminate","time":"2026-11-21T12:34:56Z"}"#
        );
    }
}
