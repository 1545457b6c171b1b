//! Benchmark of gameday's L4 proxy with no fault active, against a direct connection.
//!
//! Run through `scripts/bench-proxy.sh` (a release build). Everything stays on loopback and
//! every loop is bounded. Two measures, each direct and through the proxy:
//! - round trips of a 64-byte message on one kept-alive connection (the proxy's per-chunk
//!   path: what a pooled HTTP client feels);
//! - a fresh connection per round trip (adds the proxy's accept, backend connect and task
//!   spawn).
//!
//! Percentiles come from the sorted samples (a few tens of thousands: no histogram needed).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gameday::targets::local::proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const MSG: [u8; 64] = [b'x'; 64];

async fn echo(port: u16, cancel: CancellationToken) -> SocketAddr {
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tokio::select! {
                _ = cancel.cancelled() => return,
                a = l.accept() => a.unwrap(),
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn rtt(s: &mut TcpStream) -> Duration {
    let mut buf = [0u8; 64];
    let t = Instant::now();
    s.write_all(&MSG).await.unwrap();
    s.read_exact(&mut buf).await.unwrap();
    t.elapsed()
}

async fn kept_alive(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for _ in 0..1000 {
        rtt(&mut s).await; // warm up
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(rtt(&mut s).await);
    }
    v
}

async fn fresh(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        rtt(&mut s).await;
        v.push(t.elapsed());
    }
    v
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn line(name: &str, mut v: Vec<Duration>) -> [f64; 4] {
    v.sort();
    let r = [pct(&v, 50.0), pct(&v, 90.0), pct(&v, 99.0), pct(&v, 99.9)];
    println!(
        "{name:<28} n={:<6} p50={:>7.1}us p90={:>7.1}us p99={:>7.1}us p99.9={:>7.1}us",
        v.len(),
        r[0],
        r[1],
        r[2],
        r[3]
    );
    r
}

/// Arguments: `[ROUND_TRIPS] [--echo-port PORT] [--also NAME=ADDR]...`; `--also` adds another
/// proxy (toxiproxy) already forwarding to the echo server on `--echo-port`.
fn main() {
    let mut n = 20_000usize;
    let mut echo_port = 0u16;
    let mut also: Vec<(String, SocketAddr)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--echo-port" => {
                echo_port = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--echo-port PORT")
            }
            "--also" => {
                let v = args.next().expect("--also NAME=ADDR");
                let (name, addr) = v.split_once('=').expect("--also NAME=ADDR");
                also.push((
                    name.to_string(),
                    addr.parse().expect("--also NAME=ADDR: bad address"),
                ));
            }
            other => n = other.parse().expect("ROUND_TRIPS must be a number"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cancel = CancellationToken::new();
        let backend = echo(echo_port, cancel.clone()).await;
        let (_tx, rx) = watch::channel(vec![backend]);
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), rx, cancel.clone())
            .await
            .unwrap();
        let p = proxy.local_addr();
        println!("# round trips of 64 bytes over loopback, no fault active");
        let d = line("kept-alive direct", kept_alive(backend, n).await);
        let x = line("kept-alive via proxy", kept_alive(p, n).await);
        println!(
            "{:<28} p50=+{:.1}us p99=+{:.1}us p99.9=+{:.1}us",
            "kept-alive proxy overhead",
            x[0] - d[0],
            x[2] - d[2],
            x[3] - d[3]
        );
        for (name, addr) in &also {
            let y = line(
                &format!("kept-alive via {name}"),
                kept_alive(*addr, n).await,
            );
            println!(
                "{:<28} p50=+{:.1}us p99=+{:.1}us p99.9=+{:.1}us",
                format!("kept-alive {name} overhead"),
                y[0] - d[0],
                y[2] - d[2],
                y[3] - d[3]
            );
        }
        let m = (n / 10).max(100);
        let d = line("new connection direct", fresh(backend, m).await);
        let x = line("new connection via proxy", fresh(p, m).await);
        println!(
            "{:<28} p50=+{:.1}us p99=+{:.1}us p99.9=+{:.1}us",
            "new-connection overhead",
            x[0] - d[0],
            x[2] - d[2],
            x[3] - d[3]
        );
        for (name, addr) in &also {
            line(&format!("new connection via {name}"), fresh(*addr, m).await);
        }
        cancel.cancel();
    });
}
