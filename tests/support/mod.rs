//! Helpers shared by the integration tests.

pub mod ec2_fault_proxy;
pub mod moto;
