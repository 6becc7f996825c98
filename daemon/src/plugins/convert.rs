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

/// `Some` unless empty: the record's form of an optional string.
fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// `Some` unless empty: the record's form of an optional list.
fn non_empty_list<T>(value: Vec<T>) -> Option<Vec<T>> {
    (!value.is_empty()).then_some(value)
}

/// Turns a post into the contract's record: every group filled, every empty
/// string or list `none` (so it costs nothing to pass to a plugin).
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
        text: non_empty(text),
        lang: non_empty(lang),
        author: Some(wit::Author {
            id: author.id,
            username: author.username,
            name: author.name,
            location: author.location,
            followers: author.followers,
            verified: author.verified,
        }),
        metrics: Some(wit::Metrics {
            retweets: metrics.retweets,
            likes: metrics.likes,
            replies: metrics.replies,
            quotes: metrics.quotes,
        }),
        hashtags: non_empty_list(hashtags),
        mentions: non_empty_list(mentions),
        cashtags: non_empty_list(cashtags),
        urls: non_empty_list(urls),
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
        matching_rules: non_empty_list(
            matching_rules
                .into_iter()
                .map(|rule| wit::MatchingRule {
                    id: rule.id,
                    tag: rule.tag,
                })
                .collect(),
        ),
        attrs: non_empty_list(
            attrs
                .into_iter()
                .map(|(name, value)| wit::Attr {
                    name,
                    value: attr_to_wit(value),
                })
                .collect(),
        ),
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
    let author = author.unwrap_or_else(empty_author);
    let metrics = metrics.unwrap_or(EMPTY_METRICS);
    Post {
        id,
        created_at: extra.created_at,
        text: text.unwrap_or_default(),
        lang: lang.unwrap_or_default(),
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
        hashtags: hashtags.unwrap_or_default(),
        mentions: mentions.unwrap_or_default(),
        cashtags: cashtags.unwrap_or_default(),
        urls: urls.unwrap_or_default(),
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
            .unwrap_or_default()
            .into_iter()
            .map(|rule| MatchingRule {
                id: rule.id,
                tag: rule.tag,
            })
            .collect(),
        attrs: attrs
            .unwrap_or_default()
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

/// Applies what a plugin changed to the full post (keeping empty values `none`).
pub(crate) fn apply_changes(post: &mut wit::Post, changes: wit::Changes) {
    let wit::Changes {
        text,
        lang,
        author_id,
        author_username,
        author_name,
        author_location,
        mentions,
        urls,
        in_reply_to_user_id,
        set_attrs,
        remove_attrs,
    } = changes;
    if let Some(text) = text {
        post.text = non_empty(text);
    }
    if let Some(lang) = lang {
        post.lang = non_empty(lang);
    }
    if author_id.is_some()
        || author_username.is_some()
        || author_name.is_some()
        || author_location.is_some()
    {
        let author = post.author.get_or_insert_with(empty_author);
        if let Some(id) = author_id {
            author.id = id;
        }
        if let Some(username) = author_username {
            author.username = username;
        }
        if let Some(name) = author_name {
            author.name = name;
        }
        if let Some(location) = author_location {
            author.location = location;
        }
    }
    if let Some(mentions) = mentions {
        post.mentions = non_empty_list(mentions);
    }
    if let Some(urls) = urls {
        post.urls = non_empty_list(urls);
    }
    if let Some(in_reply_to_user_id) = in_reply_to_user_id {
        post.in_reply_to_user_id = in_reply_to_user_id;
    }
    if !remove_attrs.is_empty()
        && let Some(attrs) = &mut post.attrs
    {
        attrs.retain(|attr| !remove_attrs.contains(&attr.name));
        if attrs.is_empty() {
            post.attrs = None;
        }
    }
    if set_attrs.is_empty() {
        return;
    }
    // The common case, a post without attributes yet: the plugin's list becomes
    // the post's as it is (its names are distinct, as the SDK sends them).
    if post.attrs.is_none() && names_are_distinct(&set_attrs) {
        post.attrs = Some(set_attrs);
        return;
    }
    let attrs = post.attrs.get_or_insert_with(Vec::new);
    attrs.reserve(set_attrs.len());
    for attr in set_attrs {
        match attrs.iter_mut().find(|old| old.name == attr.name) {
            Some(old) => old.value = attr.value,
            None => attrs.push(attr),
        }
    }
}

/// True when no two attributes share a name (a short list: compared pairwise).
fn names_are_distinct(attrs: &[wit::Attr]) -> bool {
    attrs
        .iter()
        .enumerate()
        .all(|(index, attr)| attrs[..index].iter().all(|other| other.name != attr.name))
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
/// of their own, the other groups `none`; [`restore`] moves them back.
/// Nothing is copied, so a plugin that reads little costs little.
pub(crate) fn take_projection(post: &mut wit::Post, reads: wit::Fields) -> wit::Post {
    let has = |flag: wit::Fields| reads.contains(flag);
    let mut projected = empty_post(std::mem::take(&mut post.id));
    if has(wit::Fields::TEXT) {
        projected.text = post.text.take();
    }
    if has(wit::Fields::LANG) {
        projected.lang = post.lang.take();
    }
    if has(wit::Fields::AUTHOR) {
        projected.author = post.author.take();
    }
    if has(wit::Fields::METRICS) {
        projected.metrics = post.metrics;
    }
    if has(wit::Fields::ENTITIES) {
        projected.hashtags = post.hashtags.take();
        projected.mentions = post.mentions.take();
        projected.cashtags = post.cashtags.take();
        projected.urls = post.urls.take();
    }
    if has(wit::Fields::PLACE) {
        projected.place = post.place.take();
    }
    if has(wit::Fields::KIND) {
        projected.created_at = post.created_at;
        projected.is_retweet = post.is_retweet;
        projected.is_reply = post.is_reply;
        projected.is_quote = post.is_quote;
        projected.has_media = post.has_media;
        projected.in_reply_to_user_id = post.in_reply_to_user_id.take();
    }
    if has(wit::Fields::RULES) {
        projected.matching_rules = post.matching_rules.take();
    }
    if has(wit::Fields::ATTRS) {
        projected.attrs = post.attrs.take();
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

/// An author with nothing known.
fn empty_author() -> wit::Author {
    wit::Author {
        id: String::new(),
        username: String::new(),
        name: String::new(),
        location: None,
        followers: 0,
        verified: false,
    }
}

/// Metrics with every count zero.
const EMPTY_METRICS: wit::Metrics = wit::Metrics {
    retweets: 0,
    likes: 0,
    replies: 0,
    quotes: 0,
};

/// A record with only the id filled.
fn empty_post(id: String) -> wit::Post {
    wit::Post {
        id,
        created_at: None,
        text: None,
        lang: None,
        author: None,
        metrics: None,
        hashtags: None,
        mentions: None,
        cashtags: None,
        urls: None,
        place: None,
        is_retweet: false,
        is_reply: false,
        is_quote: false,
        has_media: false,
        in_reply_to_user_id: None,
        matching_rules: None,
        attrs: None,
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
            assert_eq!(projected.text.is_none(), !has(wit::Fields::TEXT));
            assert_eq!(projected.lang.is_none(), !has(wit::Fields::LANG));
            assert_eq!(projected.author.is_none(), !has(wit::Fields::AUTHOR));
            assert_eq!(projected.metrics.is_none(), !has(wit::Fields::METRICS));
            assert_eq!(projected.urls.is_none(), !has(wit::Fields::ENTITIES));
            assert_eq!(projected.place.is_none(), !has(wit::Fields::PLACE));
            assert_eq!(projected.is_quote, has(wit::Fields::KIND));
            assert_eq!(projected.created_at.is_some(), has(wit::Fields::KIND));
            assert_eq!(projected.matching_rules.is_none(), !has(wit::Fields::RULES));
            assert_eq!(projected.attrs.is_none(), !has(wit::Fields::ATTRS));
            restore(&mut record, projected, reads);
            assert_eq!(format!("{record:?}"), original, "reads {reads:?}");
        }
    }

    fn no_changes() -> wit::Changes {
        wit::Changes {
            text: None,
            lang: None,
            author_id: None,
            author_username: None,
            author_name: None,
            author_location: None,
            mentions: None,
            urls: None,
            in_reply_to_user_id: None,
            set_attrs: Vec::new(),
            remove_attrs: Vec::new(),
        }
    }

    #[test]
    fn empty_strings_and_lists_cross_as_none_and_come_back_empty() {
        let post = Post {
            id: "7".to_owned(),
            ..Post::default()
        };
        let (record, extra) = to_wit(post.clone());
        assert_eq!(record.text, None);
        assert_eq!(record.lang, None);
        assert_eq!(record.hashtags, None);
        assert!(record.matching_rules.is_none());
        assert!(record.attrs.is_none());
        let back = from_wit(record, extra);
        assert_eq!(format!("{back:?}"), format!("{post:?}"));
    }

    #[test]
    fn changes_apply_to_the_full_record_and_keep_empty_values_none() {
        let mut record = full_record();
        let mut changes = no_changes();
        changes.text = Some(String::new());
        changes.author_id = Some("i_1".to_owned());
        changes.in_reply_to_user_id = Some(Some("i_2".to_owned()));
        changes.mentions = Some(Vec::new());
        changes.remove_attrs = vec!["score".to_owned()];
        apply_changes(&mut record, changes);
        assert_eq!(record.text, None);
        assert_eq!(record.mentions, None);
        assert!(record.attrs.is_none());
        assert_eq!(record.in_reply_to_user_id.as_deref(), Some("i_2"));
        let author = record.author.as_ref().unwrap();
        assert_eq!(
            (author.id.as_str(), author.username.as_str()),
            ("i_1", "bob")
        );

        let mut changes = no_changes();
        changes.set_attrs = vec![wit::Attr {
            name: "label".to_owned(),
            value: wit::AttrValue::Text("positive".to_owned()),
        }];
        apply_changes(&mut record, changes);
        let attrs = record.attrs.as_ref().unwrap();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].name, "label");
    }

    #[test]
    fn a_repeated_attribute_name_keeps_the_last_value() {
        let mut record = to_wit(Post::default()).0;
        let attr = |value: i64| wit::Attr {
            name: "n".to_owned(),
            value: wit::AttrValue::Integer(value),
        };
        let mut changes = no_changes();
        changes.set_attrs = vec![attr(1), attr(2)];
        apply_changes(&mut record, changes);
        let attrs = record.attrs.unwrap();
        assert_eq!(attrs.len(), 1);
        assert!(matches!(attrs[0].value, wit::AttrValue::Integer(2)));
    }
}
