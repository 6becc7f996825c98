//! Sources read posts from the outside world and publish them, one message per post.

pub mod positions;
pub mod replay;
pub mod x;

pub use replay::{ReplaySource, SourceError};
pub use x::{XSource, XSourceError};
