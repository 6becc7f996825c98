//! Moving posts between the daemon's [`Post`] and the contract's record, and
//! applying the `changes` a plugin returns.
//!
//! Posts are converted once when a batch enters the chain (moving, not copying,
//! their strings) and once when it leaves; in between every plugin sees the
//! contract form, projected to the fields it declared it reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::bindings as wit;
use crate::post::{AttrValue, Author, MatchingRule, Metrics, Place, Post};

/// The parts of a post the contract does not carry (or carries lossily).
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    created_at: Option<DateTime<Utc>>,
    raw: Option<Arc<str>>,
}

/// Turns a post into the contract's record.
pub(crate) fn to_wit(post: Post) -> (wit::Post, Extra) {
    let Post {
        id,
        created_at,
        text,
        lang,
        author,
        metrics,
        hashtags,
        mentions,
        cashtags,
        urls,
        place,
        is_retweet,
        is_reply,
        is_quote,
        has_media,
        in_reply_to_user_id,
        matching_rules,
        attrs,
        raw,
    } = post;
    let record = wit::Post {
        id,
        created_at: created_at.map(|time| time.timestamp_millis()),
        text,
        lang,
        author: wit::Author {
            id: author.id,
            username: author.username,
            name: author.name,
            location: author.location,
            followers: author.followers,
            verified: author.verified,
        },
        metrics: wit::Metrics {
            retweets: metrics.retweets,
            likes: metrics.likes,
            replies: metrics.replies,
            quotes: metrics.quotes,
        },
        hashtags,
        mentions,
        cashtags,
        urls,
        place: place.map(|place| wit::Place {
            id: place.id,
            full_name: place.full_name,
            country_code: place.country_code,
        }),
        is_retweet,
        is_reply,
        is_quote,
        has_media,
        in_reply_to_user_id,
        matching_rules: matching_rules
            .into_iter()
            .map(|rule| wit::MatchingRule {
                id: rule.id,
                tag: rule.tag,
            })
            .collect(),
        attrs: attrs
            .into_iter()
            .map(|(name, value)| wit::Attr {
                name,
                value: attr_to_wit(value),
            })
            .collect(),
    };
    (record, Extra { created_at, raw })
}

/// Turns the contract's record back into a post.
pub(crate) fn from_wit(record: wit::Post, extra: Extra) -> Post {
    let wit::Post {
        id,
        created_at: _,
        text,
        lang,
        author,
        metrics,
        hashtags,
        mentions,
        cashtags,
        urls,
        place,
        is_retweet,
        is_reply,
        is_quote,
        has_media,
        in_reply_to_user_id,
        matching_rules,
        attrs,
    } = record;
    Post {
        id,
        created_at: extra.created_at,
        text,
        lang,
        author: Author {
            id: author.id,
            username: author.username,
            name: author.name,
            location: author.location,
            followers: author.followers,
            verified: author.verified,
        },
        metrics: Metrics {
            retweets: metrics.retweets,
            likes: metrics.likes,
            replies: metrics.replies,
            quotes: metrics.quotes,
        },
        hashtags,
        mentions,
        cashtags,
        urls,
        place: place.map(|place| Place {
            id: place.id,
            full_name: place.full_name,
            country_code: place.country_code,
        }),
        is_retweet,
        is_reply,
        is_quote,
        has_media,
        in_reply_to_user_id,
        matching_rules: matching_rules
            .into_iter()
            .map(|rule| MatchingRule {
                id: rule.id,
                tag: rule.tag,
            })
            .collect(),
        attrs: attrs
            .into_iter()
            .map(|attr| (attr.name, attr_from_wit(attr.value)))
            .collect::<BTreeMap<_, _>>(),
        raw: extra.raw,
    }
}

fn attr_to_wit(value: AttrValue) -> wit::AttrValue {
    match value {
        AttrValue::Bool(value) => wit::AttrValue::Boolean(value),
        AttrValue::Int(value) => wit::AttrValue::Integer(value),
        AttrValue::Float(value) => wit::AttrValue::Float(value),
        AttrValue::Str(value) => wit::AttrValue::Text(value),
        AttrValue::List(value) => wit::AttrValue::Texts(value),
    }
}

fn attr_from_wit(value: wit::AttrValue) -> AttrValue {
    match value {
        wit::AttrValue::Boolean(value) => AttrValue::Bool(value),
        wit::AttrValue::Integer(value) => AttrValue::Int(value),
        wit::AttrValue::Float(value) => AttrValue::Float(value),
        wit::AttrValue::Text(value) => AttrValue::Str(value),
        wit::AttrValue::Texts(value) => AttrValue::List(value),
    }
}

/// Applies what a plugin changed to the full post.
pub(crate) fn apply_changes(post: &mut wit::Post, changes: wit::Changes) {
    let wit::Changes {
        text,
        lang,
        author_username,
        author_name,
        author_location,
        mentions,
        urls,
        set_attrs,
        remove_attrs,
    } = changes;
    if let Some(text) = text {
        post.text = text;
    }
    if let Some(lang) = lang {
        post.lang = lang;
    }
    if let Some(username) = author_username {
        post.author.username = username;
    }
    if let Some(name) = author_name {
        post.author.name = name;
    }
    if let Some(location) = author_location {
        post.author.location = location;
    }
    if let Some(mentions) = mentions {
        post.mentions = mentions;
    }
    if let Some(urls) = urls {
        post.urls = urls;
    }
    if !remove_attrs.is_empty() {
        post.attrs.retain(|attr| !remove_attrs.contains(&attr.name));
    }
    for attr in set_attrs {
        match post.attrs.iter_mut().find(|old| old.name == attr.name) {
            Some(old) => old.value = attr.value,
            None => post.attrs.push(attr),
        }
    }
}

/// Every field group.
pub(crate) fn all_fields() -> wit::Fields {
    wit::Fields::TEXT
        | wit::Fields::LANG
        | wit::Fields::AUTHOR
        | wit::Fields::METRICS
        | wit::Fields::ENTITIES
        | wit::Fields::PLACE
        | wit::Fields::KIND
        | wit::Fields::RULES
        | wit::Fields::ATTRS
}

/// The names of the field groups in `reads`, for people.
pub(crate) fn field_names(reads: wit::Fields) -> Vec<&'static str> {
    let groups = [
        (wit::Fields::TEXT, "text"),
        (wit::Fields::LANG, "lang"),
        (wit::Fields::AUTHOR, "author"),
        (wit::Fields::METRICS, "metrics"),
        (wit::Fields::ENTITIES, "entities"),
        (wit::Fields::PLACE, "place"),
        (wit::Fields::KIND, "kind"),
        (wit::Fields::RULES, "rules"),
        (wit::Fields::ATTRS, "attrs"),
    ];
    let names: Vec<&'static str> = groups
        .iter()
        .filter(|(flag, _)| reads.contains(*flag))
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        vec!["nothing but the id"]
    } else {
        names
    }
}

/// A copy of `post` with only the field groups in `reads` filled (the id always is).
pub(crate) fn project(post: &wit::Post, reads: wit::Fields) -> wit::Post {
    let has = |flag: wit::Fields| reads.contains(flag);
    let kind = has(wit::Fields::KIND);
    let entities = has(wit::Fields::ENTITIES);
    wit::Post {
        id: post.id.clone(),
        created_at: if kind { post.created_at } else { None },
        text: if has(wit::Fields::TEXT) {
            post.text.clone()
        } else {
            String::new()
        },
        lang: if has(wit::Fields::LANG) {
            post.lang.clone()
        } else {
            String::new()
        },
        author: if has(wit::Fields::AUTHOR) {
            post.author.clone()
        } else {
            wit::Author {
                id: String::new(),
                username: String::new(),
                name: String::new(),
                location: None,
                followers: 0,
                verified: false,
            }
        },
        metrics: if has(wit::Fields::METRICS) {
            post.metrics
        } else {
            wit::Metrics {
                retweets: 0,
                likes: 0,
                replies: 0,
                quotes: 0,
            }
        },
        hashtags: if entities {
            post.hashtags.clone()
        } else {
            Vec::new()
        },
        mentions: if entities {
            post.mentions.clone()
        } else {
            Vec::new()
        },
        cashtags: if entities {
            post.cashtags.clone()
        } else {
            Vec::new()
        },
        urls: if entities {
            post.urls.clone()
        } else {
            Vec::new()
        },
        place: if has(wit::Fields::PLACE) {
            post.place.clone()
        } else {
            None
        },
        is_retweet: kind && post.is_retweet,
        is_reply: kind && post.is_reply,
        is_quote: kind && post.is_quote,
        has_media: kind && post.has_media,
        in_reply_to_user_id: if kind {
            post.in_reply_to_user_id.clone()
        } else {
            None
        },
        matching_rules: if has(wit::Fields::RULES) {
            post.matching_rules.clone()
        } else {
            Vec::new()
        },
        attrs: if has(wit::Fields::ATTRS) {
            post.attrs.clone()
        } else {
            Vec::new()
        },
    }
}
