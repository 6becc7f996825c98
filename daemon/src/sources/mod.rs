//! Sources read posts from the outside world and publish them, one message per post.

pub mod replay;

pub use replay::{ReplaySource, SourceError};
