//! The single integration-test binary: one module per area, sharing `support`.

mod support;

mod cli_validate;
mod engine_run;
mod load;
mod report;
