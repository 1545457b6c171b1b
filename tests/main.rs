//! The single integration test binary: one module per area.

mod sandbox_demo;
mod sandbox_dns;
mod sandbox_proxy;
mod sandbox_spot;
mod sandbox_support;
