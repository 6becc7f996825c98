//! tweetpipe: posts from X (or a replay file) through a broker and a chain of
//! WebAssembly plugins into batched sink rows, acknowledged only once committed.
//!
//! # Layout
//!
//! - [`config`] reads and validates `tweetpipe.toml`, with errors that point at the key.
//! - [`post`] is the typed post every stage shares, and the decoders into it.
//! - [`sample`] writes deterministic synthetic posts in the X v2 stream shape.
//! - [`sources`] read posts from the outside world (replay files, the X stream).
//! - [`broker`] carries raw messages from ingest to process with an ack contract.
//! - [`plugins`] runs each batch of posts through the configured plugin chain.
//! - [`batcher`] groups rows by count, bytes and age before they reach a sink.
//! - [`sinks`] commit rows (SQLite, JSONL, stdout) and report duplicates and rejects.
//! - [`dead_letter`] keeps every message that could not be processed, with why.
//! - [`pipeline`] wires the stages together once and drains them on shutdown.
//! - [`stats`] counts what happened, for the run summary and metrics.
//! - [`metrics`] serves Prometheus metrics, `/healthz` and `/readyz`, and draws `tweetpipe top`.
//! - [`dashboard`] serves a web page of the stream's aggregates behind a login.
//! - [`summary`] renders the run summary and the resolved pipeline.
//! - [`systemd`] tells the service manager about readiness, status, watchdog, reload and stop.
//! - [`cli`] is the command line; `main.rs` only calls it.

pub mod batcher;
pub mod broker;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod dead_letter;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod plugins;
pub mod post;
pub mod sample;
pub mod scheduling;
pub mod sinks;
pub mod sources;
pub mod stats;
pub mod summary;
pub mod systemd;
