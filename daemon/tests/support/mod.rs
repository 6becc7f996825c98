//! Shared helpers for the integration tests.

#![allow(dead_code)]

pub mod fake_bigquery;
pub mod fake_x;
