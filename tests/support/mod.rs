//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod k8s_local;
pub mod k8s_mock;
