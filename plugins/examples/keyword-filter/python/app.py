"""Keeps posts whose text contains one of `config.keywords` (case-insensitive)
and records which one matched in the `keyword` attribute."""

from tweetpipe_plugin import Changes, Post, filter_map, init

KEYWORDS = []


@init
def setup(config: dict) -> None:
    keywords = config.get("keywords")
    if keywords is None:
        raise ValueError("config.keywords is missing")
    if not isinstance(keywords, list) or not keywords:
        raise ValueError("config.keywords must list at least one keyword")
    KEYWORDS[:] = [str(keyword).lower() for keyword in keywords]


@filter_map(name="keyword-filter", reads=["text"])
def keyword_filter(post: Post):
    text = post.text.lower()
    for keyword in KEYWORDS:
        if keyword in text:
            return Changes().set_attr("keyword", keyword)
    return None
