//! A tiny HTTP proxy in front of moto that answers chosen EC2 actions with the errors real EC2
//! gives and moto never does (`RequestLimitExceeded`, `UnauthorizedOperation`,
//! `IncorrectInstanceState`, `UnsupportedOperation`), and logs every action it sees, with the
//! time, so tests can check the order and spacing of calls.
//!
//! Hand-written on tokio's TCP rather than on hyper's server: turning on hyper's server
//! features for the tests would change hyper's feature set in test builds and rebuild
//! aws-sdk-ec2 (minutes, gigabytes) a second time. The EC2 query protocol needs little: one
//! `Content-Length` request body, one response, `Connection: close`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One fault to inject: answer `action` (optionally only its DryRun, or only real calls) with
/// EC2's error `code`, `times` times (`None`: always).
#[derive(Debug, Clone)]
pub struct Rule {
    /// EC2 action (`TerminateInstances`).
    pub action: String,
    /// `Some(true)`: only DryRun calls; `Some(false)`: only real calls; `None`: both.
    pub dry_run: Option<bool>,
    /// EC2 error code.
    pub code: String,
    /// How many times to answer with the error before letting calls through.
    pub times: Option<usize>,
}

impl Rule {
    /// Always fail real (non-DryRun) calls of `action` with `code`.
    pub fn always(action: &str, code: &str) -> Rule {
        Rule {
            action: action.to_owned(),
            dry_run: Some(false),
            code: code.to_owned(),
            times: None,
        }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// EC2 action.
    pub action: String,
    /// It was a DryRun.
    pub dry_run: bool,
    /// The proxy answered with an injected error instead of forwarding.
    pub faulted: bool,
    /// The raw form body (instance ids are in it).
    pub body: String,
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status_for(code: &str) -> &'static str {
    match code {
        "RequestLimitExceeded" => "503 Service Unavailable",
        "UnauthorizedOperation" => "403 Forbidden",
        _ => "400 Bad Request",
    }
}

fn form_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

impl FaultProxy {
    /// Start a proxy to `upstream` (moto's address).
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy addr"));
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (r, s) = (rules.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let (r, s) = (r.clone(), s.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, upstream, r, s).await;
                });
            }
        });
        FaultProxy {
            endpoint,
            rules,
            seen,
            task,
        }
    }

    /// Add a fault rule.
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// Remove every fault rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The real (non-DryRun) calls of `action` seen so far.
    pub fn calls(&self, action: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.action == action && !s.dry_run)
            .collect()
    }
}

/// Read one HTTP/1.1 message head and its `Content-Length` body.
async fn read_message(conn: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

/// Replace any `Connection` header of a message head with `Connection: close`.
fn close_head(head: &str) -> String {
    let mut out: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
        })
        .collect();
    out.push("Connection: close");
    out.join("\r\n") + "\r\n\r\n"
}

async fn serve(
    mut conn: TcpStream,
    upstream: SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let Some((head, body)) = read_message(&mut conn).await? else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let action = form_value(&text, "Action").unwrap_or("").to_owned();
    let dry_run = form_value(&text, "DryRun") == Some("true");
    let injected = {
        let mut rules = rules.lock().unwrap();
        let hit = rules.iter_mut().find(|r| {
            r.action == action
                && r.dry_run.is_none_or(|d| d == dry_run)
                && r.times.is_none_or(|t| t > 0)
        });
        hit.map(|r| {
            if let Some(t) = &mut r.times {
                *t -= 1;
            }
            r.code.clone()
        })
    };
    seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        action: action.clone(),
        dry_run,
        faulted: injected.is_some(),
        body: text,
    });
    if let Some(code) = injected {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>injected by the gameday test proxy: {code} on {action}</Message></Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
        );
        let response = format!(
            "HTTP/1.1 {}\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            status_for(&code),
            xml.len()
        );
        conn.write_all(response.as_bytes()).await?;
        return conn.shutdown().await;
    }
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(close_head(&head).as_bytes()).await?;
    up.write_all(&body).await?;
    // We asked for `Connection: close`, so the response ends at EOF whatever its framing.
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(());
    };
    let resp_head = String::from_utf8_lossy(&response[..head_end + 4]).into_owned();
    conn.write_all(close_head(&resp_head).as_bytes()).await?;
    conn.write_all(&response[head_end + 4..]).await?;
    conn.shutdown().await
}
