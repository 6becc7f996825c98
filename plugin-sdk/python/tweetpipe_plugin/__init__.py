"""Write a tweetpipe plugin in a few lines of Python.

Put ``@filter``, ``@map`` or ``@filter_map`` on one function (and ``@init`` on
another, if the plugin takes a config), then build the module into a
WebAssembly component with ``componentize-py`` against the contract in
``wit/``. The SDK loops over each batch inside the plugin, reads every post
out of the batch's shared string buffer into a :class:`Post` (lazily: a field
is decoded the first time it is read), and sends back only what changed.

The same names as the Rust SDK: ``Post``, ``Author``, ``Place``,
``MatchingRule``, ``Metrics``, ``Changes``, ``filter``, ``map``,
``filter_map``, ``init``.
"""

import json
import sys
import traceback

__all__ = [
    "Author",
    "Changes",
    "MatchingRule",
    "Metrics",
    "Place",
    "Post",
    "CONTRACT_VERSION",
    "filter",
    "filter_map",
    "init",
    "map",
]

#: The version of the contract this SDK builds plugins for.
CONTRACT_VERSION = "0.3.0"

_FIELD_GROUPS = {
    "text": "TEXT",
    "lang": "LANG",
    "author": "AUTHOR",
    "metrics": "METRICS",
    "entities": "ENTITIES",
    "hashtags": "ENTITIES",
    "mentions": "ENTITIES",
    "cashtags": "ENTITIES",
    "urls": "ENTITIES",
    "place": "PLACE",
    "kind": "KIND",
    "created_at": "KIND",
    "is_retweet": "KIND",
    "is_reply": "KIND",
    "is_quote": "KIND",
    "has_media": "KIND",
    "in_reply_to_user_id": "KIND",
    "rules": "RULES",
    "matching_rules": "RULES",
    "attrs": "ATTRS",
}


class Author:
    """The author of a post."""

    __slots__ = ("id", "username", "name", "location", "followers", "verified")

    def __init__(self, id="", username="", name="", location=None, followers=0, verified=False):
        self.id = id
        #: The handle, without ``@``.
        self.username = username
        #: The display name.
        self.name = name
        #: The free-text profile location, or ``None``.
        self.location = location
        self.followers = followers
        self.verified = verified

    def __repr__(self):
        return f"Author(id={self.id!r}, username={self.username!r}, name={self.name!r})"


class Metrics:
    """Public engagement counts at the time the post was read."""

    __slots__ = ("retweets", "likes", "replies", "quotes")

    def __init__(self, retweets=0, likes=0, replies=0, quotes=0):
        self.retweets = retweets
        self.likes = likes
        self.replies = replies
        self.quotes = quotes


class Place:
    """A place a post is tagged with."""

    __slots__ = ("id", "full_name", "country_code")

    def __init__(self, id="", full_name="", country_code=None):
        self.id = id
        self.full_name = full_name
        self.country_code = country_code


class MatchingRule:
    """A filtered-stream rule that matched the post on X."""

    __slots__ = ("id", "tag")

    def __init__(self, id="", tag=""):
        self.id = id
        self.tag = tag


class _Storage:
    """The storage of one batch, which its posts point into with byte spans."""

    __slots__ = ("text", "ascii", "raw", "strings", "rules")

    def __init__(self, batch):
        self.text = batch.text
        # Byte offsets are character offsets when the buffer is ASCII, which
        # spares encoding the buffer and decoding every string.
        self.ascii = batch.text.isascii()
        self.raw = None if self.ascii else batch.text.encode()
        self.strings = batch.strings
        self.rules = batch.rules

    def str(self, span):
        start = span.start
        if self.ascii:
            return self.text[start : start + span.len]
        return self.raw[start : start + span.len].decode()

    def optional(self, span):
        return self.str(span) if span.len else None

    def strs(self, range_):
        if not range_.len:
            return []
        return [self.str(span) for span in self.strings[range_.start : range_.start + range_.len]]


_UNREAD = object()
_LAZY = (
    "id",
    "text",
    "lang",
    "author",
    "metrics",
    "hashtags",
    "mentions",
    "cashtags",
    "urls",
    "place",
    "in_reply_to_user_id",
    "matching_rules",
    "attrs",
)


def _lazy(name):
    slot = "_" + name

    def get(self):
        value = getattr(self, slot)
        if value is _UNREAD:
            value = _READERS[name](self._storage, self._wire)
            setattr(self, slot, value)
        return value

    def set_(self, value):
        setattr(self, slot, value)

    return property(get, set_)


def _read_author(storage, wire):
    author = wire.author
    if author is None:
        return Author()
    return Author(
        storage.str(author.id),
        storage.str(author.username),
        storage.str(author.name),
        storage.optional(author.location),
        author.followers,
        author.verified,
    )


def _read_metrics(storage, wire):
    metrics = wire.metrics
    if metrics is None:
        return Metrics()
    return Metrics(metrics.retweets, metrics.likes, metrics.replies, metrics.quotes)


def _read_place(storage, wire):
    place = wire.place
    if place is None:
        return None
    return Place(storage.str(place.id), storage.str(place.full_name), storage.optional(place.country_code))


def _read_rules(storage, wire):
    range_ = wire.matching_rules
    rules = storage.rules[range_.start : range_.start + range_.len]
    return [MatchingRule(storage.str(rule.id), storage.str(rule.tag)) for rule in rules]


def _read_attrs(storage, wire):
    return {attr.name: _from_attr_value(attr.value) for attr in wire.attrs or ()}


_READERS = {
    "id": lambda storage, wire: storage.str(wire.id),
    "text": lambda storage, wire: storage.str(wire.text),
    "lang": lambda storage, wire: storage.str(wire.lang),
    "author": _read_author,
    "metrics": _read_metrics,
    "hashtags": lambda storage, wire: storage.strs(wire.hashtags),
    "mentions": lambda storage, wire: storage.strs(wire.mentions),
    "cashtags": lambda storage, wire: storage.strs(wire.cashtags),
    "urls": lambda storage, wire: storage.strs(wire.urls),
    "place": _read_place,
    "in_reply_to_user_id": lambda storage, wire: storage.optional(wire.in_reply_to_user_id),
    "matching_rules": _read_rules,
    "attrs": _read_attrs,
}


class Post:
    """A post, normalised from any source.

    Only the field groups the plugin declares in ``reads=`` are filled; the
    others are empty (``""``, ``[]``, ``None``, ``False``, zero). ``Post(text="hi",
    lang="en")`` builds a post for a test; the SDK builds the ones of a batch,
    decoding each field the first time it is read.

    ``attrs`` is a dict of the attributes earlier plugins set: ``bool``,
    ``int``, ``float``, ``str`` or a list of ``str``.
    """

    __slots__ = tuple("_" + name for name in _LAZY) + (
        "_storage",
        "_wire",
        "created_at",
        "is_retweet",
        "is_reply",
        "is_quote",
        "has_media",
    )

    def __init__(
        self,
        id="",
        text="",
        lang="",
        author=None,
        metrics=None,
        hashtags=None,
        mentions=None,
        cashtags=None,
        urls=None,
        place=None,
        is_retweet=False,
        is_reply=False,
        is_quote=False,
        has_media=False,
        in_reply_to_user_id=None,
        matching_rules=None,
        attrs=None,
        created_at=None,
    ):
        self._storage = None
        self._wire = None
        self._id = id
        self._text = text
        self._lang = lang
        self._author = author if author is not None else Author()
        self._metrics = metrics if metrics is not None else Metrics()
        self._hashtags = list(hashtags or [])
        self._mentions = list(mentions or [])
        self._cashtags = list(cashtags or [])
        self._urls = list(urls or [])
        self._place = place
        self._in_reply_to_user_id = in_reply_to_user_id
        self._matching_rules = list(matching_rules or [])
        self._attrs = dict(attrs or {})
        #: Creation time in milliseconds since the Unix epoch, or ``None``.
        self.created_at = created_at
        self.is_retweet = is_retweet
        self.is_reply = is_reply
        self.is_quote = is_quote
        self.has_media = has_media

    @classmethod
    def _of(cls, storage, wire):
        post = cls.__new__(cls)
        post._storage = storage
        post._wire = wire
        for name in _LAZY:
            setattr(post, "_" + name, _UNREAD)
        post.created_at = wire.created_at
        post.is_retweet = wire.is_retweet
        post.is_reply = wire.is_reply
        post.is_quote = wire.is_quote
        post.has_media = wire.has_media
        return post

    def attr(self, name):
        """The value of attribute ``name``, or ``None``."""
        return self.attrs.get(name)

    def attr_f64(self, name):
        """Attribute ``name`` as a float when it is a number."""
        value = self.attrs.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    def attr_i64(self, name):
        """Attribute ``name`` when it is an integer (a float, even a whole one, is ``None``)."""
        value = self.attrs.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def attr_str(self, name):
        """Attribute ``name`` when it is text."""
        value = self.attrs.get(name)
        return value if isinstance(value, str) else None

    def attr_bool(self, name):
        """Attribute ``name`` when it is a boolean."""
        value = self.attrs.get(name)
        return value if isinstance(value, bool) else None

    def rule_tags(self):
        """The tags of the rules that matched."""
        return [rule.tag for rule in self.matching_rules]

    def has_hashtag(self, tag):
        """Whether the post carries hashtag ``tag`` (with or without ``#``, any ASCII case)."""
        tag = tag.lstrip("#").lower()
        return any(hashtag.lower() == tag for hashtag in self.hashtags)

    def __repr__(self):
        return f"Post(id={self.id!r}, lang={self.lang!r}, text={self.text!r})"


for _name in _LAZY:
    setattr(Post, _name, _lazy(_name))
del _name


class Changes:
    """What a ``@map`` or ``@filter_map`` changes on a kept post.

    Every method returns the same ``Changes``, so calls chain:
    ``Changes().set_attr("score", 0.5).set_lang("en")``.
    """

    __slots__ = (
        "text",
        "lang",
        "author_id",
        "author_username",
        "author_name",
        "author_location",
        "mentions",
        "urls",
        "in_reply_to_user_id",
        "set_attrs",
        "remove_attrs",
        "_set",
    )

    def __init__(self):
        self.text = None
        self.lang = None
        self.author_id = None
        self.author_username = None
        self.author_name = None
        self.mentions = None
        self.urls = None
        # Fields that can be cleared: set when `_set` names them.
        self.author_location = None
        self.in_reply_to_user_id = None
        self._set = set()
        self.set_attrs = {}
        self.remove_attrs = []

    def is_empty(self):
        return (
            self.text is None
            and self.lang is None
            and self.author_id is None
            and self.author_username is None
            and self.author_name is None
            and self.mentions is None
            and self.urls is None
            and not self._set
            and not self.set_attrs
            and not self.remove_attrs
        )

    def set_attr(self, name, value):
        """Adds or replaces attribute ``name``: bool, int, float, str or a list of str."""
        _to_attr_value(name, value)
        if name in self.remove_attrs:
            self.remove_attrs.remove(name)
        self.set_attrs[name] = value
        return self

    def remove_attr(self, name):
        self.set_attrs.pop(name, None)
        if name not in self.remove_attrs:
            self.remove_attrs.append(name)
        return self

    def set_text(self, text):
        self.text = str(text)
        return self

    def set_lang(self, lang):
        self.lang = str(lang)
        return self

    def set_author_id(self, id):
        self.author_id = str(id)
        return self

    def set_author_username(self, username):
        self.author_username = str(username)
        return self

    def set_author_name(self, name):
        self.author_name = str(name)
        return self

    def set_author_location(self, location):
        """``None`` clears the location."""
        self.author_location = location
        self._set.add("author_location")
        return self

    def set_mentions(self, mentions):
        self.mentions = [str(mention) for mention in mentions]
        return self

    def set_urls(self, urls):
        self.urls = [str(url) for url in urls]
        return self

    def set_in_reply_to_user_id(self, id):
        """``None`` clears it."""
        self.in_reply_to_user_id = id
        self._set.add("in_reply_to_user_id")
        return self

    def apply(self, post):
        """Applies these changes to ``post`` the way the host will (for tests)."""
        for field in ("text", "lang", "mentions", "urls"):
            value = getattr(self, field)
            if value is not None:
                setattr(post, field, value)
        for field, target in (("author_id", "id"), ("author_username", "username"), ("author_name", "name")):
            value = getattr(self, field)
            if value is not None:
                setattr(post.author, target, value)
        if "author_location" in self._set:
            post.author.location = self.author_location
        if "in_reply_to_user_id" in self._set:
            post.in_reply_to_user_id = self.in_reply_to_user_id
        attrs = post.attrs
        for name in self.remove_attrs:
            attrs.pop(name, None)
        attrs.update(self.set_attrs)
        return post

    def _wire(self, wit):
        some = wit.Some
        return wit.processor.Changes(
            text=self.text,
            lang=self.lang,
            author_id=self.author_id,
            author_username=self.author_username,
            author_name=self.author_name,
            author_location=some(self.author_location) if "author_location" in self._set else None,
            mentions=self.mentions,
            urls=self.urls,
            in_reply_to_user_id=some(self.in_reply_to_user_id) if "in_reply_to_user_id" in self._set else None,
            set_attrs=[
                wit.processor.Attr(name, _to_attr_value(name, value, wit.processor))
                for name, value in self.set_attrs.items()
            ],
            remove_attrs=list(self.remove_attrs),
        )


def _from_attr_value(value):
    return value.value


def _to_attr_value(name, value, wire=None):
    if isinstance(value, bool):
        return wire.AttrValue_Boolean(value) if wire else None
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"attribute {name!r}: {value} does not fit a 64-bit integer")
        return wire.AttrValue_Integer(value) if wire else None
    if isinstance(value, float):
        return wire.AttrValue_Float(value) if wire else None
    if isinstance(value, str):
        return wire.AttrValue_Text(value) if wire else None
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return wire.AttrValue_Texts(list(value)) if wire else None
    raise TypeError(
        f"attribute {name!r}: {type(value).__name__} is not an attribute value "
        "(use bool, int, float, str or a list of str)"
    )


class _Wit:
    """The generated bindings, imported on first use so the SDK also runs on the host (tests)."""

    def __init__(self):
        from componentize_py_types import Err, Some
        from wit_world.exports import processor

        self.processor = processor
        self.Some = Some
        self.Err = Err


class _Plugin:
    """What the decorators record: the one entry point, its kind, and `@init`."""

    entry = None
    kind = None
    name = None
    version = "0.1.0"
    reads = None
    init = None
    wit = None


def _failure(error):
    """The last line of the traceback, as Python prints it: `ValueError: bad input`."""
    return traceback.format_exception_only(type(error), error)[-1].strip()


class Processor:
    """The component's `processor` export (componentize-py finds it in the app module)."""

    def info(self):
        wit = _wit()
        flags = wit.processor.Fields(0)
        groups = _Plugin.reads
        for group in groups:
            flags |= getattr(wit.processor.Fields, _FIELD_GROUPS[group])
        return wit.processor.PluginInfo(name=_Plugin.name, version=_Plugin.version, reads=flags)

    def init(self, config):
        wit = _wit()
        try:
            values = json.loads(config) if config.strip() else {}
            if values is None:
                values = {}
            if not isinstance(values, dict):
                raise ValueError(f"config must be a table (a JSON object), got {config}")
            if _Plugin.init is not None:
                _Plugin.init(values)
        except Exception as error:  # noqa: BLE001 - every failure rejects the config
            raise wit.Err(_failure(error))

    def process(self, batch):
        wit = _wit()
        p = wit.processor
        keep_unchanged = p.Outcome_Keep(None)
        dropped = p.Outcome_Drop(f"rejected by {_Plugin.entry.__name__}")
        storage = _Storage(batch)
        entry = _Plugin.entry
        kind = _Plugin.kind
        outcomes = []
        append = outcomes.append
        for wire in batch.posts:
            post = Post._of(storage, wire)
            try:
                answer = entry(post)
                if kind == "filter":
                    append(keep_unchanged if answer else dropped)
                    continue
                if answer is None or answer is False:
                    if kind == "filter_map":
                        append(dropped)
                        continue
                    answer = None
                if answer is True or answer is None:
                    append(keep_unchanged)
                elif isinstance(answer, Changes):
                    append(keep_unchanged if answer.is_empty() else p.Outcome_Keep(answer._wire(wit)))
                else:
                    raise TypeError(
                        f"{entry.__name__} returned {type(answer).__name__}; "
                        f"a @{kind} returns Changes" + (" or None to drop" if kind == "filter_map" else " or None")
                    )
            except Exception as error:  # noqa: BLE001 - a failure fails this post only
                append(p.Outcome_Fail(_failure(error)))
        return outcomes


def _wit():
    if _Plugin.wit is None:
        _Plugin.wit = _Wit()
    return _Plugin.wit


def _entry(kind, function, name, version, reads):
    if _Plugin.entry is not None and _Plugin.entry is not function:
        raise RuntimeError(
            f"@{kind} on {function.__name__}: this plugin already has an entry point, "
            f"{_Plugin.entry.__name__}; a plugin has exactly one"
        )
    groups = list(_FIELD_GROUPS) if reads is None else list(reads)
    for group in groups:
        if group not in _FIELD_GROUPS:
            raise ValueError(f"reads=: unknown field {group!r}; known: {', '.join(_FIELD_GROUPS)}")
    _Plugin.entry = function
    _Plugin.kind = kind
    _Plugin.name = name or function.__name__.replace("_", "-")
    _Plugin.version = version
    _Plugin.reads = groups
    # componentize-py looks for the export's class in the app module.
    module = sys.modules.get(function.__module__)
    if module is not None:
        module.Processor = Processor
    return function


def _decorator(kind):
    def decorate(function=None, *, reads=None, name=None, version="0.1.0"):
        if function is None:
            return lambda function: _entry(kind, function, name, version, reads)
        return _entry(kind, function, name, version, reads)

    decorate.__name__ = kind
    decorate.__doc__ = (
        f"Makes the function the plugin's entry point (@{kind}, or "
        f"@{kind}(reads=[\"lang\", \"urls\"], name=..., version=...))."
    )
    return decorate


#: ``@filter``: ``def f(post: Post) -> bool``; true keeps, false drops.
filter = _decorator("filter")  # noqa: A001 - the SDK's name, as in Rust
#: ``@map``: ``def f(post: Post) -> Changes | None``; keeps the post with those changes.
map = _decorator("map")  # noqa: A001
#: ``@filter_map``: ``def f(post: Post) -> Changes | True | None``; ``None`` drops.
filter_map = _decorator("filter_map")


def init(function):
    """``@init``: ``def f(config: dict) -> None``, once per instance; raising rejects the config."""
    _Plugin.init = function
    return function
