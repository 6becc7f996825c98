#![doc = include_str!("../README.md")]

// The generated bindings and the attribute macros name this crate by its
// public name, which must also resolve inside the crate itself.
extern crate self as tweetpipe_plugin;

mod changes;
mod config;
mod error;
mod post;
#[cfg(any(test, target_arch = "wasm32"))]
mod small_blocks;

#[doc(hidden)]
pub mod __private;

/// The guest bindings of the `tweetpipe:plugin@0.3.0` contract, generated once
/// here so plugin crates never run the generator themselves.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "tweetpipe_plugin::bindings",
        runtime_path: "tweetpipe_plugin::__private::wit_bindgen::rt",
        additional_derives: [PartialEq],
    });
}

pub use changes::Changes;
pub use config::Config;
pub use error::{Error, Result};
pub use tweetpipe_plugin_macros::{filter, filter_map, init, map};

pub use bindings::exports::tweetpipe::plugin::processor::{Attr, AttrValue, Fields, Metrics};
pub use post::{Author, MatchingRule, Place, Post};

/// Small allocations (the strings of each post crossing in) are served from
/// per-size free lists; see `small_blocks`.
#[cfg(all(
    target_arch = "wasm32",
    not(target_feature = "atomics"),
    feature = "small-block-cache"
))]
#[global_allocator]
static ALLOCATOR: small_blocks::SmallBlockCache =
    small_blocks::SmallBlockCache::new(std::alloc::System);

/// The version of the contract this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// Everything a plugin usually needs: `use tweetpipe_plugin::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AttrValue, Author, Changes, Config, Error, Metrics, Place, Post, Result, filter,
        filter_map, init, map,
    };
}
