//! The HTTP side of the generator: opening a keep-alive connection
//! (DNS, TCP, TLS, HTTP/1.1 or HTTP/2 handshake), sending one request and reading its body,
//! and classifying every failure into an [`ErrorClass`].
//!
//! Each load worker owns its connections (no shared pool, no lock between workers), and knows
//! exactly when a connection is opened (counted in the service time) and when it is lost
//! (reconnect on the next request). HTTP/1.1 runs on the lean path in [`super::h1`]; HTTP/2 on
//! hyper's connection-level client (`hyper::client::conn::http2`).

use std::io;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::error::ErrorClass;
use super::h1::{H1Conn, H1Error};
use super::spec::{Endpoint, Origin, Plan};

/// One open connection, ready for the next request.
pub(crate) enum Sender {
    /// HTTP/1.1 on the lean path ([`super::h1`]): one request at a time.
    H1(H1Conn),
    /// HTTP/2 on hyper (the worker still sends one request at a time, so connections =
    /// concurrency).
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// Why a request on an open connection failed.
pub(crate) enum SendError {
    /// A reused keep-alive connection refused the request before any byte of it left (the
    /// peer had closed it while idle): an idempotent request may go once more on a fresh one.
    Stale,
    /// A real failure, in its class.
    Failed(ErrorClass),
}

impl Sender {
    /// Whether it can take no more requests (then the worker reconnects, uncounted).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Sender::H1(c) => c.closed,
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// Whether the peer has closed the connection while it sat idle (seen without waiting:
    /// one non-blocking read). Then it is replaced before anything is written on it.
    pub(crate) fn peer_closed(&mut self) -> bool {
        match self {
            Sender::H1(c) => c.peer_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// Sends one request for `ep` and reads the whole answer (so the connection can be
    /// reused); returns the status.
    pub(crate) async fn send(&mut self, ep: &Endpoint) -> Result<StatusCode, SendError> {
        match self {
            Sender::H1(c) => match c.send(&ep.h1_request, ep.head).await {
                Ok(code) => {
                    StatusCode::from_u16(code).map_err(|_| SendError::Failed(ErrorClass::Other))
                }
                Err(H1Error::Stale) => Err(SendError::Stale),
                Err(H1Error::Failed(class)) => Err(SendError::Failed(class)),
            },
            Sender::H2(s) => {
                if s.ready().await.is_err() {
                    return Err(SendError::Stale);
                }
                let mut req = Request::new(Full::new(Bytes::clone(&ep.body)));
                *req.method_mut() = ep.method.clone();
                *req.uri_mut() = ep.uri.clone();
                *req.headers_mut() = ep.headers.clone();
                *req.version_mut() = Version::HTTP_2;
                let fail = |e: hyper::Error| SendError::Failed(classify_hyper(&e));
                let resp = s.send_request(req).await.map_err(fail)?;
                let status = resp.status();
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    frame.map_err(fail)?;
                }
                Ok(status)
            }
        }
    }
}

/// Opens one connection to `origin`: DNS, TCP (each resolved address in turn), TLS, then the
/// HTTP handshake. The connection's driver runs in its own task until the connection closes.
pub(crate) async fn connect(plan: &Plan, origin: &Origin) -> Result<Sender, ErrorClass> {
    let addrs = tokio::net::lookup_host((origin.host.as_str(), origin.port))
        .await
        .map_err(|_| ErrorClass::Dns)?;
    let mut last = ErrorClass::Dns;
    let mut stream = None;
    for addr in addrs {
        match tokio::time::timeout(plan.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                // The time budget is spent: trying the next address would double it.
                last = ErrorClass::ConnectTimeout;
                break;
            }
            Ok(Err(e)) => last = classify_connect(&e),
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
        }
    }
    let stream = stream.ok_or(last)?;
    // Requests are small and latency is the measurement: never wait for Nagle.
    let _ = stream.set_nodelay(true);
    if origin.tls {
        let config = plan.tls.clone().ok_or(ErrorClass::Tls)?;
        let name = ServerName::try_from(origin.host.clone()).map_err(|_| ErrorClass::Tls)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = tokio::time::timeout(plan.connect_timeout, connector.connect(name, stream))
            .await
            .map_err(|_| ErrorClass::ConnectTimeout)?
            // Whatever breaks a handshake (an untrusted certificate, a peer that does not speak
            // TLS and answers garbage or closes) is a TLS failure from the user's side.
            .map_err(|_| ErrorClass::Tls)?;
        if plan.http2 {
            h2_handshake(TokioIo::new(tls)).await
        } else {
            Ok(Sender::H1(H1Conn::new(Box::new(tls))))
        }
    } else if plan.http2 {
        h2_handshake(TokioIo::new(stream)).await
    } else {
        Ok(Sender::H1(H1Conn::new(Box::new(stream))))
    }
}

async fn h2_handshake<T>(io: T) -> Result<Sender, ErrorClass>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| classify_hyper(&e))?;
    // HTTP/2 needs its connection driven all the time (pings, window updates): its own task.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Sender::H2(sender))
}

/// The class of a failed TCP connect.
pub(crate) fn classify_connect(e: &io::Error) -> ErrorClass {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorClass::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorClass::ConnectTimeout,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => ErrorClass::Reset,
        _ => ErrorClass::Other,
    }
}

/// The class of a failed request on an open connection.
fn classify_hyper(e: &hyper::Error) -> ErrorClass {
    if e.is_timeout() {
        return ErrorClass::RequestTimeout;
    }
    // Look through the cause chain for the io or h2 error that says what the peer did.
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => ErrorClass::Reset,
                io::ErrorKind::TimedOut => ErrorClass::RequestTimeout,
                _ => ErrorClass::Other,
            };
        }
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            if h2.is_reset() || h2.is_go_away() || h2.is_io() {
                return ErrorClass::Reset;
            }
            return ErrorClass::Other;
        }
        source = s.source();
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        // The peer closed the connection before a whole response: a reset from the user's side.
        return ErrorClass::Reset;
    }
    ErrorClass::Other
}

/// The class of an HTTP status: `None` for a success (1xx, 2xx, 3xx).
pub(crate) fn classify_status(status: StatusCode) -> Option<ErrorClass> {
    if status.is_server_error() {
        Some(ErrorClass::Http5xx)
    } else if status.is_client_error() {
        Some(ErrorClass::Http4xx)
    } else {
        None
    }
}
