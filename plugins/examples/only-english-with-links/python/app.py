"""Keeps English posts that carry at least one link; drops the rest."""

from tweetpipe_plugin import Post, filter


@filter(name="only-english-with-links", reads=["lang", "urls"])
def only_english_with_links(post: Post) -> bool:
    return post.lang == "en" and bool(post.urls)
