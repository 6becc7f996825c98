//! Moving posts between the daemon's [`Post`] and the contract's record, and
//! applying the `changes` a plugin returns.
//!
//! Posts are converted once when a batch enters the chain (moving, not copying,
//! their strings) and once when it leaves; in between every plugin sees the
//! contract form, projected to the fields it declared it reads (moved out of
//! the record for the call and back after it).

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
    post.attrs.reserve(set_attrs.len());
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

/// Moves the field groups in `reads` (and the id) out of `post` into a record
/// of their own, the other groups left empty; [`restore`] moves them back.
/// Nothing is copied, so a plugin that reads little costs little.
pub(crate) fn take_projection(post: &mut wit::Post, reads: wit::Fields) -> wit::Post {
    let has = |flag: wit::Fields| reads.contains(flag);
    let take = std::mem::take::<String>;
    let kind = has(wit::Fields::KIND);
    let entities = has(wit::Fields::ENTITIES);
    let mut projected = empty_post(take(&mut post.id));
    if has(wit::Fields::TEXT) {
        projected.text = take(&mut post.text);
    }
    if has(wit::Fields::LANG) {
        projected.lang = take(&mut post.lang);
    }
    if has(wit::Fields::AUTHOR) {
        std::mem::swap(&mut projected.author, &mut post.author);
    }
    if has(wit::Fields::METRICS) {
        projected.metrics = post.metrics;
    }
    if entities {
        projected.hashtags = std::mem::take(&mut post.hashtags);
        projected.mentions = std::mem::take(&mut post.mentions);
        projected.cashtags = std::mem::take(&mut post.cashtags);
        projected.urls = std::mem::take(&mut post.urls);
    }
    if has(wit::Fields::PLACE) {
        projected.place = post.place.take();
    }
    if kind {
        projected.created_at = post.created_at;
        projected.is_retweet = post.is_retweet;
        projected.is_reply = post.is_reply;
        projected.is_quote = post.is_quote;
        projected.has_media = post.has_media;
        projected.in_reply_to_user_id = post.in_reply_to_user_id.take();
    }
    if has(wit::Fields::RULES) {
        projected.matching_rules = std::mem::take(&mut post.matching_rules);
    }
    if has(wit::Fields::ATTRS) {
        projected.attrs = std::mem::take(&mut post.attrs);
    }
    projected
}

/// Moves back what [`take_projection`] took out of `post`.
pub(crate) fn restore(post: &mut wit::Post, projected: wit::Post, reads: wit::Fields) {
    let has = |flag: wit::Fields| reads.contains(flag);
    let wit::Post {
        id,
        text,
        lang,
        author,
        hashtags,
        mentions,
        cashtags,
        urls,
        place,
        in_reply_to_user_id,
        matching_rules,
        attrs,
        ..
    } = projected;
    post.id = id;
    if has(wit::Fields::TEXT) {
        post.text = text;
    }
    if has(wit::Fields::LANG) {
        post.lang = lang;
    }
    if has(wit::Fields::AUTHOR) {
        post.author = author;
    }
    if has(wit::Fields::ENTITIES) {
        post.hashtags = hashtags;
        post.mentions = mentions;
        post.cashtags = cashtags;
        post.urls = urls;
    }
    if has(wit::Fields::PLACE) {
        post.place = place;
    }
    if has(wit::Fields::KIND) {
        post.in_reply_to_user_id = in_reply_to_user_id;
    }
    if has(wit::Fields::RULES) {
        post.matching_rules = matching_rules;
    }
    if has(wit::Fields::ATTRS) {
        post.attrs = attrs;
    }
}

/// A record with only the id filled.
fn empty_post(id: String) -> wit::Post {
    wit::Post {
        id,
        created_at: None,
        text: String::new(),
        lang: String::new(),
        author: wit::Author {
            id: String::new(),
            username: String::new(),
            name: String::new(),
            location: None,
            followers: 0,
            verified: false,
        },
        metrics: wit::Metrics {
            retweets: 0,
            likes: 0,
            replies: 0,
            quotes: 0,
        },
        hashtags: Vec::new(),
        mentions: Vec::new(),
        cashtags: Vec::new(),
        urls: Vec::new(),
        place: None,
        is_retweet: false,
        is_reply: false,
        is_quote: false,
        has_media: false,
        in_reply_to_user_id: None,
        matching_rules: Vec::new(),
        attrs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_record() -> wit::Post {
        let post = Post {
            id: "1861000000000000001".to_owned(),
            created_at: Some("2026-11-21T10:00:00.000Z".parse().unwrap()),
            text: "hello @ana #rust $ACME https://t.co/x".to_owned(),
            lang: "en".to_owned(),
            author: Author {
                id: "42".to_owned(),
                username: "bob".to_owned(),
                name: "Bob".to_owned(),
                location: Some("Lisbon".to_owned()),
                followers: 7,
                verified: true,
            },
            metrics: Metrics {
                retweets: 1,
                likes: 2,
                replies: 3,
                quotes: 4,
            },
            hashtags: vec!["rust".to_owned()],
            mentions: vec!["ana".to_owned()],
            cashtags: vec!["ACME".to_owned()],
            urls: vec!["https://example.com/".to_owned()],
            place: Some(Place {
                id: "p1".to_owned(),
                full_name: "Lisbon, Portugal".to_owned(),
                country_code: Some("PT".to_owned()),
            }),
            is_retweet: true,
            is_reply: true,
            is_quote: true,
            has_media: true,
            in_reply_to_user_id: Some("43".to_owned()),
            matching_rules: vec![MatchingRule {
                id: "9".to_owned(),
                tag: "music".to_owned(),
            }],
            attrs: BTreeMap::from([("score".to_owned(), AttrValue::Float(0.5))]),
            raw: None,
        };
        to_wit(post).0
    }

    #[test]
    fn a_projection_holds_only_what_the_plugin_reads_and_restores_exactly() {
        let groups = [
            wit::Fields::empty(),
            wit::Fields::TEXT,
            wit::Fields::TEXT | wit::Fields::AUTHOR | wit::Fields::ENTITIES,
            wit::Fields::LANG | wit::Fields::PLACE | wit::Fields::KIND | wit::Fields::METRICS,
            wit::Fields::RULES | wit::Fields::ATTRS,
            all_fields(),
        ];
        let original = format!("{:?}", full_record());
        for reads in groups {
            let mut record = full_record();
            let projected = take_projection(&mut record, reads);
            let has = |flag| reads.contains(flag);
            assert_eq!(projected.id, "1861000000000000001");
            assert_eq!(projected.text.is_empty(), !has(wit::Fields::TEXT));
            assert_eq!(projected.lang.is_empty(), !has(wit::Fields::LANG));
            assert_eq!(
                projected.author.username.is_empty(),
                !has(wit::Fields::AUTHOR)
            );
            assert_eq!(projected.metrics.likes == 0, !has(wit::Fields::METRICS));
            assert_eq!(projected.urls.is_empty(), !has(wit::Fields::ENTITIES));
            assert_eq!(projected.place.is_none(), !has(wit::Fields::PLACE));
            assert_eq!(projected.is_quote, has(wit::Fields::KIND));
            assert_eq!(projected.created_at.is_some(), has(wit::Fields::KIND));
            assert_eq!(
                projected.matching_rules.is_empty(),
                !has(wit::Fields::RULES)
            );
            assert_eq!(projected.attrs.is_empty(), !has(wit::Fields::ATTRS));
            restore(&mut record, projected, reads);
            assert_eq!(format!("{record:?}"), original, "reads {reads:?}");
        }
    }
}
