//! Helpers for the sandbox tests: throwaway loopback servers that the tests start themselves.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A TCP echo server on a free loopback port, answering each chunk with `tag` + the chunk.
/// Stops with `cancel`.
pub async fn echo_server(tag: &'static str, cancel: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tokio::select! {
                _ = cancel.cancelled() => return,
                a = listener.accept() => a.unwrap(),
            };
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = tokio::select! {
                        _ = cancel.cancelled() => return,
                        r = s.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
                    };
                    let mut out = tag.as_bytes().to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A fixed backend list, as the fleet would publish it.
pub fn backends(addrs: Vec<SocketAddr>) -> watch::Receiver<Vec<SocketAddr>> {
    let (tx, rx) = watch::channel(addrs);
    // Keep the sender alive for the whole test process: the proxy only reads the list.
    std::mem::forget(tx);
    rx
}

/// Send `msg` and read one answer, with a bound on the wait.
pub async fn roundtrip(s: &mut TcpStream, msg: &[u8], wait: Duration) -> std::io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut buf = vec![0u8; 64 * 1024];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(n)) => Ok(buf[..n].to_vec()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// GET `url` with a fresh HTTP/1 connection; returns status and body.
pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Empty};
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let authority = uri.authority().ok_or("no authority")?.to_string();
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(uri.clone())
        .header(hyper::header::HOST, authority)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| chain(&e))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An error with its sources, `outer: inner: ...` (hyper's own message is only "connection
/// error"; the cause says reset or closed).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
