//! Host bindings generated from the plugin contract (`plugin-sdk/wit`), the same
//! WIT the SDK builds plugins against.

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "plugin",
});

pub use exports::tweetpipe::plugin::processor::{
    Attr, AttrValue, Author, Changes, Fields, MatchingRule, Metrics, Outcome, Place, PluginInfo,
    Post, Range, Span,
};

/// The contract package, without version.
pub const CONTRACT_PACKAGE: &str = "tweetpipe:plugin";

/// The contract version this host implements.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// The interface every plugin exports, without version.
pub const PROCESSOR_INTERFACE: &str = "tweetpipe:plugin/processor";
