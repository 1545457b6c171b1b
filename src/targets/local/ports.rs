//! Loopback ports for the sandbox's processes, picked below the kernel's ephemeral range.
//!
//! Why not simply `bind(127.0.0.1:0)`: that hands out a port of the ephemeral range, which
//! the caller releases and the supervised process binds a moment later, and binds again
//! every time the supervisor restarts it after a `process_kill`. In between, any outgoing
//! connection on the machine may take that very port as its source port (the load
//! generator and the fault proxy open thousands during a gameday), and the process then
//! fails to start with `EADDRINUSE`. The kernel never gives an outgoing connection a port
//! below `net.ipv4.ip_local_port_range`, so a port picked there stays ours unless another
//! program listens on it, which the bind check below sees.

use std::net::{Ipv4Addr, TcpListener};
use std::ops::Range;

use rand::Rng;

/// Used when `/proc/sys/net/ipv4/ip_local_port_range` cannot be read (Linux's default).
const DEFAULT_EPHEMERAL_LOW: u16 = 32768;
/// How far below the ephemeral range to look: wide enough that two runs picking at random
/// almost never meet, and above the well-known and registered ports most daemons use.
const SPAN: u16 = 12_000;
/// Random tries before falling back to the kernel's choice.
const TRIES: usize = 64;

/// A TCP port on 127.0.0.1 that nothing listens on now and that outgoing connections will
/// not take: chosen at random below the ephemeral range, or from the kernel (`bind(0)`)
/// when that range is crowded.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let range = candidate_range(ephemeral_low().unwrap_or(DEFAULT_EPHEMERAL_LOW));
    if !range.is_empty() {
        let mut rng = rand::thread_rng();
        for _ in 0..TRIES {
            let port = rng.gen_range(range.clone());
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The first port of the ephemeral range, from procfs.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Up to `SPAN` ports just below `low`, never below 1024 (privileged).
fn candidate_range(low: u16) -> Range<u16> {
    low.saturating_sub(SPAN).max(1024)..low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_sits_below_the_ephemeral_ports_and_above_the_privileged_ones() {
        assert_eq!(candidate_range(32768), 20768..32768);
        assert_eq!(candidate_range(5000), 1024..5000);
        assert!(candidate_range(1024).is_empty());
    }

    #[test]
    fn a_picked_port_is_free_and_outside_the_ephemeral_range() {
        let low = ephemeral_low().unwrap_or(DEFAULT_EPHEMERAL_LOW);
        for _ in 0..20 {
            let port = free_loopback_port().unwrap();
            assert!(port < low, "{port} is in the ephemeral range from {low}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
        }
    }
}
