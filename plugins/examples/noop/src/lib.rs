//! Keeps every post unchanged and reads nothing but the id: what the plugin
//! runtime itself costs per post.

use tweetpipe_plugin::prelude::*;

#[filter(reads())]
fn keep_everything(_post: &Post) -> bool {
    true
}
