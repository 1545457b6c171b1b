//! The HTTP/1.1 hot path: one keep-alive connection owned by one worker, the request bytes
//! precomputed once per endpoint, the response head parsed with `httparse` (hyper's own
//! parser) and the body read and discarded in a reused buffer.
//!
//! Why not hyper's client here: hyper's connection-level client runs each connection as a
//! separate task fed through a channel and answers through a oneshot, so every request costs
//! two task wake-ups, an allocated request and header map, and a response object. Measured with
//! `scripts/bench-load.sh` on nginx, that path gave ~150-160 k requests per CPU-second (oha, also
//! on hyper, the same) against wrk's ~300 k; a load generator's efficiency is a measurement
//! concern (a generator short of CPU lags). This file is the part of HTTP/1.1 a load client
//! needs (Content-Length, chunked, close-delimited, bodiless statuses, 1xx) and nothing else;
//! HTTP/2 stays on hyper.

use std::future::Future;
use std::io;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::ErrorClass;

/// Any byte stream a connection runs on (plain TCP or TLS).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The exact bytes of one request, built once per endpoint.
pub(crate) fn encode_request(
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Bytes {
    let mut b = Vec::with_capacity(128 + body.len());
    b.extend_from_slice(method.as_str().as_bytes());
    b.push(b' ');
    b.extend_from_slice(path_and_query.as_bytes());
    b.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        b.extend_from_slice(name.as_str().as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(value.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    let needs_length =
        !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if needs_length && !headers.contains_key(http::header::CONTENT_LENGTH) {
        b.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    b.extend_from_slice(b"\r\n");
    b.extend_from_slice(body);
    Bytes::from(b)
}

/// How the response body ends.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Why a request on this connection failed.
pub(crate) enum H1Error {
    /// A reused keep-alive connection refused the very first byte of the request (the peer
    /// had closed it while idle: the idle-close race), so nothing of it left. The caller may
    /// send an idempotent request once more on a fresh connection, and counts that
    /// (`retries`). Once any byte was written the request may have reached the server, and a
    /// failure after that is a failure (RFC 9110 §9.2.2 allows more; users' numbers do not).
    Stale,
    /// A real failure.
    Failed(ErrorClass),
}

/// One HTTP/1.1 keep-alive connection.
pub(crate) struct H1Conn {
    io: Box<dyn Io>,
    buf: BytesMut,
    /// Requests completed on it (a failure on a reused connection may be the idle-close race).
    served: u64,
    /// No further request may be sent on it.
    pub closed: bool,
}

fn io_class(e: &io::Error) -> ErrorClass {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ErrorClass::Reset,
        io::ErrorKind::TimedOut => ErrorClass::RequestTimeout,
        _ if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => ErrorClass::Tls,
        _ => ErrorClass::Other,
    }
}

impl H1Conn {
    pub(crate) fn new(io: Box<dyn Io>) -> H1Conn {
        H1Conn {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            served: 0,
            closed: false,
        }
    }

    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> Result<bool, ErrorClass> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(io_class(&e)),
        }
    }

    /// Whether the peer closed the connection (or sent something unasked, which also makes it
    /// unusable) while it was idle, seen by polling one read once without waiting.
    pub(crate) fn peer_closed(&mut self) -> bool {
        if self.closed {
            return true;
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let ready = {
            let fill = std::pin::pin!(self.fill());
            fill.poll(&mut cx).is_ready()
        };
        if ready {
            self.closed = true;
        }
        ready
    }

    /// Sends the request bytes and reads the whole response; returns the status.
    pub(crate) async fn send(&mut self, request: &[u8], head: bool) -> Result<u16, H1Error> {
        let reused = self.served > 0;
        let fail = |c: ErrorClass| H1Error::Failed(c);
        // `write` rather than `write_all`: whether any byte left decides whether the request
        // may be sent again (see `H1Error::Stale`).
        let mut written = 0;
        while written < request.len() {
            match self.io.write(&request[written..]).await {
                Ok(0) => {
                    self.closed = true;
                    return Err(fail(ErrorClass::Reset));
                }
                Ok(n) => written += n,
                Err(e) => {
                    self.closed = true;
                    return Err(if reused && written == 0 {
                        H1Error::Stale
                    } else {
                        fail(io_class(&e))
                    });
                }
            }
        }
        let (status, framing, keep_alive) = loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let code = resp.code.unwrap_or(0);
                        let mut framing = Framing::UntilClose;
                        let mut keep_alive = resp.version == Some(1);
                        for h in resp.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let len = std::str::from_utf8(h.value)
                                    .ok()
                                    .and_then(|v| v.trim().parse().ok());
                                match len {
                                    Some(l) => framing = Framing::Length(l),
                                    None => {
                                        self.closed = true;
                                        return Err(fail(ErrorClass::Other));
                                    }
                                }
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                if h.value.eq_ignore_ascii_case(b"chunked")
                                    || h.value.to_ascii_lowercase().ends_with(b"chunked")
                                {
                                    framing = Framing::Chunked;
                                }
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                if h.value.eq_ignore_ascii_case(b"close") {
                                    keep_alive = false;
                                } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                                    keep_alive = true;
                                }
                            }
                        }
                        self.buf.advance(n);
                        if (100..200).contains(&code) {
                            // Interim answer (100 Continue...): the real one follows.
                            continue;
                        }
                        if head || code == 204 || code == 304 {
                            framing = Framing::None;
                        }
                        break (code, framing, keep_alive);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => {
                        self.closed = true;
                        return Err(fail(ErrorClass::Other));
                    }
                }
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => {
                    self.closed = true;
                    return Err(fail(ErrorClass::Reset));
                }
                Err(c) => {
                    self.closed = true;
                    return Err(fail(c));
                }
            }
        };
        if let Err(c) = self.read_body(framing).await {
            self.closed = true;
            return Err(fail(c));
        }
        if !keep_alive {
            self.closed = true;
        }
        self.served += 1;
        Ok(status)
    }

    async fn read_body(&mut self, framing: Framing) -> Result<(), ErrorClass> {
        match framing {
            Framing::None => Ok(()),
            Framing::Length(len) => self.skip(len).await,
            Framing::UntilClose => {
                self.closed = true;
                loop {
                    self.buf.clear();
                    if !self.fill().await? {
                        return Ok(());
                    }
                }
            }
            Framing::Chunked => loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        self.buf.advance(n);
                        if size == 0 {
                            return self.skip_trailers().await;
                        }
                        self.skip(size + 2).await?;
                    }
                    Ok(httparse::Status::Partial) => {
                        if !self.fill().await? {
                            return Err(ErrorClass::Reset);
                        }
                    }
                    Err(_) => return Err(ErrorClass::Other),
                }
            },
        }
    }

    /// Discards `len` body bytes.
    async fn skip(&mut self, mut len: u64) -> Result<(), ErrorClass> {
        loop {
            let have = (self.buf.len() as u64).min(len);
            self.buf.advance(have as usize);
            len -= have;
            if len == 0 {
                return Ok(());
            }
            if !self.fill().await? {
                return Err(ErrorClass::Reset);
            }
        }
    }

    /// After the last chunk: optional trailer lines, then an empty line.
    async fn skip_trailers(&mut self) -> Result<(), ErrorClass> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let empty = pos == 0;
                self.buf.advance(pos + 2);
                if empty {
                    return Ok(());
                }
                continue;
            }
            if !self.fill().await? {
                return Err(ErrorClass::Reset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one GET to an in-memory peer that answers `raw`: (status or class, closed, bytes
    /// left unread in the buffer).
    async fn answer(raw: &'static [u8], head: bool) -> (Result<u16, ErrorClass>, bool, usize) {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let mut conn = H1Conn::new(Box::new(client));
        let srv = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let n = server.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request reached the peer");
            server.write_all(raw).await.unwrap();
            // Keep the stream open unless the answer is close-delimited.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            drop(server);
        });
        let r = conn.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", head).await;
        srv.await.unwrap();
        let leftover = conn.buf.len();
        (
            r.map_err(|e| match e {
                H1Error::Stale => ErrorClass::Other,
                H1Error::Failed(c) => c,
            }),
            conn.closed,
            leftover,
        )
    }

    #[tokio::test]
    async fn content_length_chunked_close_and_bodiless() {
        let (r, closed, left) =
            answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", false).await;
        assert_eq!((r.ok(), closed, left), (Some(200), false, 0));
        let (r, closed, left) = answer(
            b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n",
            false,
        )
        .await;
        assert_eq!((r.ok(), closed, left), (Some(503), false, 0));
        let (r, closed, _) = answer(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
            false,
        )
        .await;
        assert_eq!((r.ok(), closed), (Some(200), true));
        let (r, closed, left) = answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            false,
        )
        .await;
        assert_eq!((r.ok(), closed, left), (Some(204), false, 0));
        let (r, _, left) = answer(b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n", true).await;
        assert_eq!((r.ok(), left), (Some(200), 0));
        let (r, closed, _) = answer(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
        assert_eq!((r.ok(), closed), (Some(200), true));
    }

    #[tokio::test]
    async fn truncated_and_garbage_answers_fail() {
        let (r, closed, _) =
            answer(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort", false).await;
        assert_eq!((r.err(), closed), (Some(ErrorClass::Reset), true));
        let (r, _, _) = answer(b"NOT HTTP AT ALL\r\n\r\n", false).await;
        assert_eq!(r.err(), Some(ErrorClass::Other));
    }

    #[test]
    fn requests_are_encoded_once_with_length() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "127.0.0.1:80".parse().unwrap());
        let b = encode_request(&Method::POST, "/a?b=1", &h, b"{}");
        assert_eq!(
            &b[..],
            b"POST /a?b=1 HTTP/1.1\r\nhost: 127.0.0.1:80\r\ncontent-length: 2\r\n\r\n{}"
        );
        let b = encode_request(&Method::GET, "/", &h, b"");
        assert_eq!(&b[..], b"GET / HTTP/1.1\r\nhost: 127.0.0.1:80\r\n\r\n");
    }
}
