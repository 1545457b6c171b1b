//! The integration test binary: one module per area, sharing `support`.

mod support;

mod k8s_e2e;
mod k8s_mock;
