//! What can go wrong with a load run: [`LoadError`] for a run that cannot start (a bad URL, a
//! bad duration, an unreadable CA file), and [`ErrorClass`] for a single request that failed
//! while the run goes on.
//!
//! A request failure is never an `Err` that stops the run: it is counted under its class in
//! the window it happened in, because during a gameday failures are the measurement.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Why a load run could not start. Each variant names the object it is about.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The `load:` section has neither `url` nor `endpoints`, or both.
    #[error("load needs exactly one of `url` or `endpoints` (got {got})")]
    NoEndpoint {
        /// What was given instead, for the message.
        got: &'static str,
    },
    /// An endpoint URL does not parse or is not http/https with a host.
    #[error("invalid load url `{url}`: {reason}")]
    BadUrl {
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An HTTP method that is not a valid token.
    #[error("invalid http method `{method}` for `{url}`")]
    BadMethod {
        /// The method as written.
        method: String,
        /// The endpoint it belongs to.
        url: String,
    },
    /// A header name or value that HTTP does not allow.
    #[error("invalid header `{name}` for `{url}`: {reason}")]
    BadHeader {
        /// The header name as written.
        name: String,
        /// The endpoint it belongs to.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value out of its range (a negative rate, zero connections, all weights zero...).
    #[error("invalid `{field}`: {reason}")]
    OutOfRange {
        /// The field it is about.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The CA file for TLS could not be read or holds no certificate.
    #[error("cannot use ca file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `set_rate` on a run started in the closed model (fixed concurrency, no rate).
    #[error("cannot set a rate on a closed-model load run (start it with a `rate` instead)")]
    ClosedModel,
    /// A load thread (or its runtime) could not be started.
    #[error("cannot start a load thread: {reason}")]
    Thread {
        /// The OS's reason.
        reason: String,
    },
    /// A serialized histogram from a journal that cannot be decoded.
    #[error("cannot decode histogram: {reason}")]
    BadHistogram {
        /// What went wrong (base64 or HdrHistogram V2 decoding).
        reason: String,
    },
}

/// The class of a failed request. Every failure falls in exactly one class, so that a report
/// can say "the errors were connect-refused" rather than "there were errors".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ErrorClass {
    /// The host name did not resolve.
    #[serde(rename = "dns")]
    Dns,
    /// Nothing listens on the port (TCP RST to our SYN).
    #[serde(rename = "connect_refused")]
    ConnectRefused,
    /// The TCP connection (or the TLS handshake on it) did not complete within the connect
    /// timeout.
    #[serde(rename = "connect_timeout")]
    ConnectTimeout,
    /// The connection was reset or closed by the peer in the middle of a request.
    #[serde(rename = "reset")]
    Reset,
    /// No complete response within the request timeout.
    #[serde(rename = "request_timeout")]
    RequestTimeout,
    /// The TLS handshake failed (untrusted certificate, wrong name, protocol mismatch).
    #[serde(rename = "tls")]
    Tls,
    /// The target answered 4xx.
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// The target answered 5xx.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// Anything else (an unparsable response, a local socket error): counted rather than
    /// forced into a class it does not belong to.
    #[serde(rename = "other")]
    Other,
}

impl ErrorClass {
    /// Every class, in the order used for counters and reports.
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::Dns,
        ErrorClass::ConnectRefused,
        ErrorClass::ConnectTimeout,
        ErrorClass::Reset,
        ErrorClass::RequestTimeout,
        ErrorClass::Tls,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::Other,
    ];

    /// The stable name used in JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Dns => "dns",
            ErrorClass::ConnectRefused => "connect_refused",
            ErrorClass::ConnectTimeout => "connect_timeout",
            ErrorClass::Reset => "reset",
            ErrorClass::RequestTimeout => "request_timeout",
            ErrorClass::Tls => "tls",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::Other => "other",
        }
    }

    /// Index into a `[u64; 9]` counter array (the hot path counts into arrays, not maps).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failed requests counted by class. Named fields (not a map) so that the JSON always has every
/// class, zeros included, and a schema can require them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ErrorCounts {
    /// Host name did not resolve.
    pub dns: u64,
    /// Connection refused.
    pub connect_refused: u64,
    /// Connect (TCP or TLS handshake) timed out.
    pub connect_timeout: u64,
    /// Connection reset or closed mid-request.
    pub reset: u64,
    /// No complete response within the request timeout.
    pub request_timeout: u64,
    /// TLS handshake failed.
    pub tls: u64,
    /// HTTP 4xx answers.
    pub http_4xx: u64,
    /// HTTP 5xx answers.
    pub http_5xx: u64,
    /// Anything else.
    pub other: u64,
}

impl ErrorCounts {
    /// Builds the named counts from the hot path's array.
    pub(crate) fn from_array(a: &[u64; 9]) -> Self {
        ErrorCounts {
            dns: a[0],
            connect_refused: a[1],
            connect_timeout: a[2],
            reset: a[3],
            request_timeout: a[4],
            tls: a[5],
            http_4xx: a[6],
            http_5xx: a[7],
            other: a[8],
        }
    }

    /// The count for one class.
    pub fn get(&self, class: ErrorClass) -> u64 {
        match class {
            ErrorClass::Dns => self.dns,
            ErrorClass::ConnectRefused => self.connect_refused,
            ErrorClass::ConnectTimeout => self.connect_timeout,
            ErrorClass::Reset => self.reset,
            ErrorClass::RequestTimeout => self.request_timeout,
            ErrorClass::Tls => self.tls,
            ErrorClass::Http4xx => self.http_4xx,
            ErrorClass::Http5xx => self.http_5xx,
            ErrorClass::Other => self.other,
        }
    }

    /// All failed requests, every class together.
    pub fn total(&self) -> u64 {
        ErrorClass::ALL.iter().map(|c| self.get(*c)).sum()
    }

    /// Adds another set of counts (merging windows into a phase, or workers into a run).
    pub fn add(&mut self, other: &ErrorCounts) {
        self.dns += other.dns;
        self.connect_refused += other.connect_refused;
        self.connect_timeout += other.connect_timeout;
        self.reset += other.reset;
        self.request_timeout += other.request_timeout;
        self.tls += other.tls;
        self.http_4xx += other.http_4xx;
        self.http_5xx += other.http_5xx;
        self.other += other.other;
    }
}
