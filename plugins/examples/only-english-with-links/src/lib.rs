//! Keeps English posts that carry at least one link; drops the rest.

use tweetpipe_plugin::prelude::*;

#[filter]
fn only_english_with_links(post: &Post) -> bool {
    post.lang == "en" && !post.urls.is_empty()
}
