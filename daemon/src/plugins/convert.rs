//! Lowering posts into the contract's batch, and applying the `changes` a
//! plugin returns.
//!
//! A plugin call carries one [`Batch`]: the strings of every post back to
//! back in one buffer, the posts pointing into it with spans. Copying one
//! buffer into the plugin takes a single call into its allocator, where a
//! string of its own took one each. Each plugin gets only the field groups it
//! reads, and the batch's buffers are reused from call to call.

use super::bindings as wit;
use super::lifting::Changes;
use super::lowering::Batch;
use crate::post::{AttrName, AttrValue, Author, Post};

/// A batch's strings passed the 4 GiB a span can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the batch's strings take more than 4 GiB, more than the plugin contract can address; \
     lower the batch size"
)]
pub(crate) struct BatchTooLarge;

/// Fills `batch` (emptied first, its buffers kept) with `posts`, each holding
/// only the groups in `reads` and its id.
pub(crate) fn lower(
    posts: &[Post],
    reads: wit::Fields,
    batch: &mut Batch,
) -> Result<(), BatchTooLarge> {
    batch.clear();
    for post in posts {
        let record = lower_post(post, reads, batch);
        batch.posts.push(record);
    }
    // Every span was computed with `as u32`: all of them are right exactly
    // when the buffer's length fits.
    if u32::try_from(batch.text.len()).is_err()
        || u32::try_from(batch.strings.len()).is_err()
        || u32::try_from(batch.rules.len()).is_err()
    {
        return Err(BatchTooLarge);
    }
    Ok(())
}

const EMPTY_SPAN: wit::Span = wit::Span { start: 0, len: 0 };
const EMPTY_RANGE: wit::Range = wit::Range { start: 0, len: 0 };

/// Appends `value` to the batch's text; where it went.
fn span(text: &mut String, value: &str) -> wit::Span {
    if value.is_empty() {
        return EMPTY_SPAN;
    }
    let start = text.len() as u32;
    text.push_str(value);
    wit::Span {
        start,
        len: value.len() as u32,
    }
}

/// Appends `values` to the batch's string table; where they went.
fn strings(batch: &mut Batch, values: &[String]) -> wit::Range {
    if values.is_empty() {
        return EMPTY_RANGE;
    }
    let start = batch.strings.len() as u32;
    for value in values {
        let item = span(&mut batch.text, value);
        batch.strings.push(item);
    }
    wit::Range {
        start,
        len: values.len() as u32,
    }
}

fn lower_post(post: &Post, reads: wit::Fields, batch: &mut Batch) -> wit::Post {
    let has = |flag: wit::Fields| reads.contains(flag);
    let mut record = wit::Post {
        id: span(&mut batch.text, &post.id),
        created_at: None,
        text: EMPTY_SPAN,
        lang: EMPTY_SPAN,
        author: None,
        metrics: None,
        hashtags: EMPTY_RANGE,
        mentions: EMPTY_RANGE,
        cashtags: EMPTY_RANGE,
        urls: EMPTY_RANGE,
        place: None,
        is_retweet: false,
        is_reply: false,
        is_quote: false,
        has_media: false,
        in_reply_to_user_id: EMPTY_SPAN,
        matching_rules: EMPTY_RANGE,
        attrs: None,
    };
    if has(wit::Fields::TEXT) {
        record.text = span(&mut batch.text, &post.text);
    }
    if has(wit::Fields::LANG) {
        record.lang = span(&mut batch.text, &post.lang);
    }
    if has(wit::Fields::AUTHOR) {
        let author = &post.author;
        let text = &mut batch.text;
        record.author = Some(wit::Author {
            id: span(text, &author.id),
            username: span(text, &author.username),
            name: span(text, &author.name),
            location: span(text, author.location.as_deref().unwrap_or_default()),
            followers: author.followers,
            verified: author.verified,
        });
    }
    if has(wit::Fields::METRICS) {
        let metrics = &post.metrics;
        record.metrics = Some(wit::Metrics {
            retweets: metrics.retweets,
            likes: metrics.likes,
            replies: metrics.replies,
            quotes: metrics.quotes,
        });
    }
    if has(wit::Fields::ENTITIES) {
        record.hashtags = strings(batch, &post.hashtags);
        record.mentions = strings(batch, &post.mentions);
        record.cashtags = strings(batch, &post.cashtags);
        record.urls = strings(batch, &post.urls);
    }
    if has(wit::Fields::PLACE)
        && let Some(place) = &post.place
    {
        let text = &mut batch.text;
        record.place = Some(wit::Place {
            id: span(text, &place.id),
            full_name: span(text, &place.full_name),
            country_code: span(text, place.country_code.as_deref().unwrap_or_default()),
        });
    }
    if has(wit::Fields::KIND) {
        record.created_at = post.created_at.map(|time| time.timestamp_millis());
        record.is_retweet = post.is_retweet;
        record.is_reply = post.is_reply;
        record.is_quote = post.is_quote;
        record.has_media = post.has_media;
        record.in_reply_to_user_id = span(
            &mut batch.text,
            post.in_reply_to_user_id.as_deref().unwrap_or_default(),
        );
    }
    if has(wit::Fields::RULES) && !post.matching_rules.is_empty() {
        let start = batch.rules.len() as u32;
        for rule in &post.matching_rules {
            let text = &mut batch.text;
            let rule = wit::MatchingRule {
                id: span(text, &rule.id),
                tag: span(text, &rule.tag),
            };
            batch.rules.push(rule);
        }
        record.matching_rules = wit::Range {
            start,
            len: post.matching_rules.len() as u32,
        };
    }
    if has(wit::Fields::ATTRS) && !post.attrs.is_empty() {
        record.attrs = Some(
            post.attrs
                .iter()
                .map(|(name, value)| wit::Attr {
                    name: name.to_string(),
                    value: attr_to_wit(value.clone()),
                })
                .collect(),
        );
    }
    record
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

/// Applies what a plugin changed to the full post; the attributes it sets are
/// the next `changes.set_attrs` of `attrs` (the batch's, in outcome order).
pub(crate) fn apply_changes(
    post: &mut Post,
    changes: Changes,
    attrs: &mut impl Iterator<Item = (AttrName, AttrValue)>,
) {
    let Changes {
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
        post.text = text;
    }
    if let Some(lang) = lang {
        post.lang = lang;
    }
    let author: &mut Author = &mut post.author;
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
    if let Some(mentions) = mentions {
        post.mentions = mentions;
    }
    if let Some(urls) = urls {
        post.urls = urls;
    }
    if let Some(in_reply_to_user_id) = in_reply_to_user_id {
        post.in_reply_to_user_id = in_reply_to_user_id;
    }
    for name in &remove_attrs {
        post.attrs.remove(name.as_str());
    }
    // In list order, so a repeated name keeps its last value.
    for (name, value) in attrs.take(set_attrs) {
        post.attrs.insert(name, value);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::post::{MatchingRule, Metrics, Place};

    fn full_post() -> Post {
        Post {
            id: "1861000000000000001".to_owned(),
            created_at: Some("2026-11-21T10:00:00.000Z".parse().unwrap()),
            text: "hello @ana #rust $ACME https://t.co/x ✨".to_owned(),
            lang: "en".to_owned(),
            author: Author {
                id: "42".to_owned(),
                username: "bob".to_owned(),
                name: "Bob Ñ".to_owned(),
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
            hashtags: vec!["rust".to_owned(), "wasm".to_owned()],
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
            attrs: BTreeMap::from([("score".into(), AttrValue::Float(0.5))]),
            raw: None,
        }
    }

    /// Reads a span back out of the batch, as a plugin would.
    fn at(batch: &Batch, span: wit::Span) -> &str {
        let start = span.start as usize;
        &batch.text[start..start + span.len as usize]
    }

    fn list(batch: &Batch, range: wit::Range) -> Vec<&str> {
        let start = range.start as usize;
        batch.strings[start..start + range.len as usize]
            .iter()
            .map(|item| at(batch, *item))
            .collect()
    }

    #[test]
    fn every_group_read_crosses_whole_and_reads_back_equal() {
        let mut batch = Batch::new();
        let posts = [full_post(), Post::default(), full_post()];
        lower(&posts, all_fields(), &mut batch).unwrap();
        assert_eq!(batch.posts.len(), 3);
        for (post, record) in posts.iter().zip(&batch.posts) {
            assert_eq!(at(&batch, record.id), post.id);
            assert_eq!(at(&batch, record.text), post.text);
            assert_eq!(at(&batch, record.lang), post.lang);
            let author = record.author.as_ref().unwrap();
            assert_eq!(at(&batch, author.name), post.author.name);
            assert_eq!(
                at(&batch, author.location),
                post.author.location.as_deref().unwrap_or("")
            );
            assert_eq!(author.verified, post.author.verified);
            assert_eq!(list(&batch, record.hashtags), post.hashtags);
            assert_eq!(list(&batch, record.mentions), post.mentions);
            assert_eq!(list(&batch, record.cashtags), post.cashtags);
            assert_eq!(list(&batch, record.urls), post.urls);
            assert_eq!(
                record
                    .place
                    .as_ref()
                    .map(|place| at(&batch, place.full_name)),
                post.place.as_ref().map(|place| place.full_name.as_str())
            );
            assert_eq!(
                at(&batch, record.in_reply_to_user_id),
                post.in_reply_to_user_id.as_deref().unwrap_or("")
            );
            assert_eq!(record.is_quote, post.is_quote);
            let start = record.matching_rules.start as usize;
            let rules = &batch.rules[start..start + record.matching_rules.len as usize];
            let tags: Vec<&str> = rules.iter().map(|rule| at(&batch, rule.tag)).collect();
            let expected: Vec<&str> = post.matching_rules.iter().map(|r| r.tag.as_str()).collect();
            assert_eq!(tags, expected);
            assert_eq!(record.attrs.as_ref().map_or(0, Vec::len), post.attrs.len());
        }
        // Nothing is stored twice and nothing empty is stored at all.
        let full = full_post();
        let one_post_bytes = [
            &full.id,
            &full.text,
            &full.lang,
            &full.author.id,
            &full.author.username,
            &full.author.name,
            "Lisbon",
            "rust",
            "wasm",
            "ana",
            "ACME",
            "https://example.com/",
            "p1",
            "Lisbon, Portugal",
            "PT",
            "43",
            "9",
            "music",
        ]
        .iter()
        .map(|value| value.len())
        .sum::<usize>();
        assert_eq!(batch.text.len(), 2 * one_post_bytes);
    }

    #[test]
    fn a_plugin_gets_only_the_groups_it_reads() {
        let groups = [
            wit::Fields::empty(),
            wit::Fields::TEXT,
            wit::Fields::TEXT | wit::Fields::AUTHOR | wit::Fields::ENTITIES,
            wit::Fields::LANG | wit::Fields::PLACE | wit::Fields::KIND | wit::Fields::METRICS,
            wit::Fields::RULES | wit::Fields::ATTRS,
            all_fields(),
        ];
        let mut batch = Batch::new();
        for reads in groups {
            lower(&[full_post()], reads, &mut batch).unwrap();
            let record = &batch.posts[0];
            let has = |flag| reads.contains(flag);
            assert_eq!(at(&batch, record.id), "1861000000000000001");
            assert_eq!(record.text.len > 0, has(wit::Fields::TEXT));
            assert_eq!(record.lang.len > 0, has(wit::Fields::LANG));
            assert_eq!(record.author.is_some(), has(wit::Fields::AUTHOR));
            assert_eq!(record.metrics.is_some(), has(wit::Fields::METRICS));
            assert_eq!(record.urls.len > 0, has(wit::Fields::ENTITIES));
            assert_eq!(batch.strings.is_empty(), !has(wit::Fields::ENTITIES));
            assert_eq!(record.place.is_some(), has(wit::Fields::PLACE));
            assert_eq!(record.is_quote, has(wit::Fields::KIND));
            assert_eq!(record.created_at.is_some(), has(wit::Fields::KIND));
            assert_eq!(record.in_reply_to_user_id.len > 0, has(wit::Fields::KIND));
            assert_eq!(record.matching_rules.len > 0, has(wit::Fields::RULES));
            assert_eq!(batch.rules.is_empty(), !has(wit::Fields::RULES));
            assert_eq!(record.attrs.is_some(), has(wit::Fields::ATTRS));
        }
    }

    #[test]
    fn changes_apply_to_the_full_post() {
        let mut post = full_post();
        let changes = Changes {
            text: Some(String::new()),
            author_id: Some("i_1".to_owned()),
            author_location: Some(None),
            in_reply_to_user_id: Some(Some("i_2".to_owned())),
            mentions: Some(Vec::new()),
            remove_attrs: vec!["score".to_owned()],
            ..Changes::default()
        };
        apply_changes(&mut post, changes, &mut std::iter::empty());
        assert_eq!(post.text, "");
        assert!(post.mentions.is_empty());
        assert!(post.attrs.is_empty());
        assert_eq!(post.in_reply_to_user_id.as_deref(), Some("i_2"));
        assert_eq!(
            (post.author.id.as_str(), post.author.username.as_str()),
            ("i_1", "bob")
        );
        assert_eq!(post.author.location, None);
        assert_eq!(post.hashtags, full_post().hashtags, "unchanged fields stay");

        // Only this outcome's share of the batch's attributes is taken.
        let mut attrs = vec![
            ("label".into(), AttrValue::Str("positive".to_owned())),
            ("next_post".into(), AttrValue::Bool(true)),
        ]
        .into_iter();
        let changes = Changes {
            set_attrs: 1,
            ..Changes::default()
        };
        apply_changes(&mut post, changes, &mut attrs);
        assert_eq!(
            post.attrs,
            BTreeMap::from([("label".into(), AttrValue::Str("positive".to_owned()))])
        );
        assert_eq!(
            attrs.next(),
            Some(("next_post".into(), AttrValue::Bool(true)))
        );
    }

    #[test]
    fn a_repeated_attribute_name_keeps_the_last_value() {
        let mut post = Post::default();
        let attr = |value: i64| ("n".into(), AttrValue::Int(value));
        let changes = Changes {
            set_attrs: 2,
            ..Changes::default()
        };
        apply_changes(&mut post, changes, &mut [attr(1), attr(2)].into_iter());
        assert_eq!(
            post.attrs,
            BTreeMap::from([("n".into(), AttrValue::Int(2))])
        );
    }
}
