//! Drops retweets, keeps everything else.

use tweetpipe_plugin::prelude::*;

#[filter(reads(is_retweet))]
fn drop_retweets(post: &Post) -> bool {
    !post.is_retweet
}
