//! The single integration test binary: one module per area, shared helpers in `support/`.

mod support;

mod aws_ec2;
mod aws_fis;
mod aws_spot;
