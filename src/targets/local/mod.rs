//! The embedded local sandbox: real processes supervised by gameday, with faults injected
//! through signals, gameday's own L4 proxy, DNS server and spot-notice endpoint.

pub mod dns;
pub mod dns_fault;
pub mod network_fault;
pub mod proxy;
pub mod sandbox;
pub mod spec;
pub mod spot;
pub mod spot_fault;
