//! Watching the instance metadata for a spot interruption notice, as a service on EC2 would
//! (`GET /latest/meta-data/spot/instance-action`: 404 until the notice, then JSON).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use crate::targets::local::spot::INSTANCE_ACTION_PATH;

/// Poll `base_url` every `every` until a notice appears (then call `on_notice` with its body,
/// once, and return) or `cancel` fires. Errors reaching the endpoint are logged and retried:
/// a missing notice must never crash the service.
pub async fn watch(
    base_url: String,
    every: Duration,
    on_notice: impl Fn(&str) + Send + 'static,
    cancel: CancellationToken,
) {
    let url: hyper::Uri = match format!("{}{INSTANCE_ACTION_PATH}", base_url.trim_end_matches('/'))
        .parse()
    {
        Ok(u) => u,
        Err(error) => {
            tracing::error!(%base_url, %error, "metadata url is invalid: not watching for spot notices");
            return;
        }
    };
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let answer = async {
            let resp = client.get(url.clone()).await.ok()?;
            let status = resp.status();
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        };
        match tokio::time::timeout(Duration::from_secs(2), answer).await {
            Ok(Some((status, body))) if status.is_success() => {
                on_notice(&String::from_utf8_lossy(&body));
                return;
            }
            Ok(Some(_)) => {}
            _ => tracing::debug!(%url, "metadata endpoint did not answer"),
        }
    }
}
