//! Shared helpers for the integration tests.

#![allow(dead_code)]

pub mod cli;
pub mod daemon;
pub mod fake_bigquery;
pub mod fake_x;
pub mod pubsub_emulator;
pub mod relay;
pub mod utf16;
pub mod wasm;
