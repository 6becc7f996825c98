//! The argument of the contract's `process`, as wasmtime lowers it.
//!
//! A batch carries its posts' strings in one buffer (`text`) and its lists in
//! two tables, so lowering it costs a few copies and one call into the
//! plugin's allocator per list, whatever the number of strings. The records
//! are the ones `bindgen!` generates for the WIT, lowered by wasmtime's own
//! derived code through its public API: a plugin built against another
//! contract is refused by wasmtime's type check.

use wasmtime::component::{ComponentType, Lower};

use super::bindings as wit;

/// The argument of the contract's `process`: the `batch` record.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct Batch {
    pub(crate) text: String,
    pub(crate) strings: Vec<wit::Span>,
    pub(crate) rules: Vec<wit::MatchingRule>,
    pub(crate) posts: Vec<wit::Post>,
}

impl Batch {
    /// An empty batch, its buffers to be reused call after call.
    pub(crate) fn new() -> Batch {
        Batch {
            text: String::new(),
            strings: Vec::new(),
            rules: Vec::new(),
            posts: Vec::new(),
        }
    }

    /// Empties the batch, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.strings.clear();
        self.rules.clear();
        self.posts.clear();
    }
}
