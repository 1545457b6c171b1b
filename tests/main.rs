//! The single integration-test binary: one module per area, sharing `support`.

mod support;

mod architecture;
mod aws_ec2;
mod aws_fis;
mod aws_scenario;
mod aws_spot;
mod cli_validate;
mod engine_run;
mod fault_lifecycle;
mod history;
mod hostile;
mod k8s_cli;
mod k8s_e2e;
mod k8s_mock;
mod load;
mod metrics;
mod report;
mod sandbox_demo;
mod sandbox_dns;
mod sandbox_proxy;
mod sandbox_spot;
mod sandbox_support;
mod security;
mod self_faults;
mod signals;
mod truthful;
