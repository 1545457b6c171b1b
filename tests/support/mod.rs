//! Shared test helpers: the binary under test, temp dirs, scenario writing, process checks.

#![allow(dead_code)]

pub mod ec2_fault_proxy;
pub mod harden;
pub mod http;
pub mod journal;
pub mod k8s_local;
pub mod k8s_mock;
pub mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The gameday binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gameday"))
}

/// A fixture's path.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A `gameday` command whose metrics endpoint takes a free port, so tests can run in
/// parallel without fighting over 8067.
///
/// Each command also gets a state directory of its own (`XDG_STATE_HOME`), so that the run
/// index of one test's runs is never seen by another test's `recover`: a parallel test's
/// live run would read as "its runner is still running". A test that needs a runner and
/// its `recover` to share the index sets `XDG_STATE_HOME` itself, after this.
pub fn cmd() -> Command {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let state = std::env::temp_dir().join(format!(
        "gameday-test-state-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut c = Command::new(bin());
    c.env("GAMEDAY_METRICS_ADDR", "127.0.0.1:0")
        .env("XDG_STATE_HOME", state);
    c
}

/// Runs `gameday ARGS` to completion.
pub fn gameday(args: &[&str]) -> Output {
    cmd().args(args).output().expect("run gameday")
}

/// Stdout and stderr as one string, for assertions with context.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether a process with this pid exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rfind(')').and_then(|i| s.get(i + 2..i + 3)) != Some("Z"),
        Err(_) => false,
    }
}

/// Processes whose command line contains `needle` (and not this test's own).
pub fn pids_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| *p != me)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .filter(|p| alive(*p))
        .collect()
}

/// A free TCP port on 127.0.0.1, below the ephemeral range: the same choice the sandbox
/// makes for its processes, so the parallel tests' outgoing connections cannot take it
/// between this call and the moment a server binds it.
pub fn free_port() -> u16 {
    gameday::targets::local::ports::free_loopback_port().expect("a free loopback port")
}

/// A tiny keep-alive HTTP/1.1 server on 127.0.0.1 that answers every request with `status`
/// (changeable through the returned handle). Plain threads, so sync tests can use it; it
/// lives as long as the test process.
pub fn status_server(status: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU16>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = Arc::new(AtomicU16::new(status));
    let c = code.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    // Read one request head (no bodies in these tests).
                    let mut got = false;
                    loop {
                        line.clear();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" || line == "\n" => break,
                            Ok(_) => got = true,
                        }
                    }
                    if !got {
                        continue;
                    }
                    let s = c.load(Ordering::Relaxed);
                    let resp = format!(
                        "HTTP/1.1 {s} X\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, code)
}

/// The ledger of the one run under `out`, once it exists.
pub fn ledger_in(out: &Path) -> Option<PathBuf> {
    let run = std::fs::read_dir(out).ok()?.next()?.ok()?.path();
    Some(run.join("ledger.jsonl")).filter(|p| p.is_file())
}
