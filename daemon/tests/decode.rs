//! Decoding through the public API: both X shapes, the errors users see, and a
//! throughput check on the committed sample.

use std::time::Instant;

use tweetpipe::post::{DecodeError, Post, decode};

/// A filtered-stream message as X sends it, with expansions for the author, the
/// place and the referenced post's author.
const V2_QUOTE: &str = r#"{"data":{"attachments":{"media_keys":["3_1861"]},"author_id":"2244994945","conversation_id":"1861000000000000002","created_at":"2026-11-21T10:00:00.000Z","edit_history_tweet_ids":["1861000000000000002"],"entities":{"hashtags":[{"start":29,"end":38,"tag":"Concert"}],"mentions":[{"start":0,"end":10,"username":"synth_dev","id":"1"}],"urls":[{"start":39,"end":62,"url":"https://t.co/AbCdEfGhIj","expanded_url":"https://x.com/synth_dev/status/1861000000000000001","display_url":"x.com/synth_dev/stat…"}]},"geo":{"place_id":"01a9a39529b27f36"},"id":"1861000000000000002","lang":"en","public_metrics":{"retweet_count":12,"reply_count":3,"like_count":140,"quote_count":1,"bookmark_count":2,"impression_count":9000},"referenced_tweets":[{"type":"quoted","id":"1861000000000000001"}],"text":"@synth_dev what a night 🎶🔥 #Concert https://t.co/AbCdEfGhIj"},"includes":{"users":[{"id":"1","name":"Dev","username":"synth_dev"},{"id":"2244994945","name":"Synthetic Fan ✨","username":"synth_fan","location":"London, England","verified":false,"public_metrics":{"followers_count":512,"following_count":300,"tweet_count":4000,"listed_count":2}}],"places":[{"full_name":"Manhattan, NY","id":"01a9a39529b27f36","country_code":"US","name":"Manhattan","place_type":"city"}]},"matching_rules":[{"id":"1861000000000000100","tag":"music"}]}"#;

/// A v1.1 retweet (the retweeted status nested in full, as v1.1 sends it).
const V1_RETWEET: &str = r#"{"created_at":"Sun Mar 01 08:00:00 +0000 2026","id":1895000000000000002,"id_str":"1895000000000000002","text":"RT @synth_dev: Tickets on sale \u2014 $ACME sponsors #NovaLarkLive","user":{"id":99,"id_str":"99","name":"Fan","screen_name":"synth_fan","location":"Lisboa, Portugal","followers_count":10,"verified":false},"retweeted_status":{"id_str":"1895000000000000001","text":"Tickets on sale \u2014 $ACME sponsors #NovaLarkLive","user":{"id_str":"1","screen_name":"synth_dev"}},"entities":{"hashtags":[{"text":"NovaLarkLive","indices":[48,61]}],"symbols":[{"text":"ACME","indices":[33,38]}],"user_mentions":[{"screen_name":"synth_dev","id_str":"1","indices":[3,13]}],"urls":[]},"retweet_count":0,"favorite_count":0,"lang":"en","place":{"id":"abc","full_name":"Lisbon, Portugal","country_code":"PT"}}"#;

#[test]
fn decodes_a_v2_quote_with_expansions() {
    let post = decode(V2_QUOTE).unwrap();
    assert_eq!(post.id, "1861000000000000002");
    assert_eq!(
        post.text,
        "@synth_dev what a night 🎶🔥 #Concert https://t.co/AbCdEfGhIj"
    );
    assert_eq!(post.author.username, "synth_fan");
    assert_eq!(post.author.name, "Synthetic Fan ✨");
    assert_eq!(post.author.location.as_deref(), Some("London, England"));
    assert_eq!(post.author.followers, 512);
    assert_eq!(post.metrics.likes, 140);
    assert_eq!(post.hashtags, ["Concert"]);
    assert_eq!(post.mentions, ["synth_dev"]);
    assert_eq!(
        post.urls,
        ["https://x.com/synth_dev/status/1861000000000000001"]
    );
    assert_eq!(post.tweet_location(), Some("Manhattan, NY"));
    assert!(post.is_quote && !post.is_retweet && !post.is_reply);
    assert!(post.has_media);
    assert_eq!(post.rule_tags().collect::<Vec<_>>(), ["music"]);
}

#[test]
fn decodes_a_v1_retweet() {
    let post = decode(V1_RETWEET).unwrap();
    assert_eq!(post.id, "1895000000000000002");
    assert_eq!(
        post.text,
        "RT @synth_dev: Tickets on sale — $ACME sponsors #NovaLarkLive"
    );
    assert_eq!(
        post.created_at.unwrap().to_rfc3339(),
        "2026-03-01T08:00:00+00:00"
    );
    assert_eq!(post.author.id, "99");
    assert_eq!(post.author.username, "synth_fan");
    assert_eq!(post.cashtags, ["ACME"]);
    assert_eq!(post.hashtags, ["NovaLarkLive"]);
    assert_eq!(post.mentions, ["synth_dev"]);
    assert!(post.is_retweet);
    assert_eq!(post.tweet_location(), Some("Lisbon, Portugal"));
}

#[test]
fn both_shapes_agree_on_the_same_post() {
    let v2 = r##"{"data":{"id":"7","text":"hello #x","created_at":"2018-10-10T20:19:24.000Z","lang":"en","author_id":"1","entities":{"hashtags":[{"tag":"x"}]},"public_metrics":{"retweet_count":1,"reply_count":2,"like_count":3,"quote_count":4}},"includes":{"users":[{"id":"1","username":"u","name":"U","location":"Paris","public_metrics":{"followers_count":5}}]}}"##;
    let v1 = r##"{"id_str":"7","text":"hello #x","created_at":"Wed Oct 10 20:19:24 +0000 2018","lang":"en","user":{"id_str":"1","screen_name":"u","name":"U","location":"Paris","followers_count":5},"entities":{"hashtags":[{"text":"x"}]},"retweet_count":1,"reply_count":2,"favorite_count":3,"quote_count":4}"##;
    let strip = |post: Post| Post { raw: None, ..post };
    assert_eq!(strip(decode(v2).unwrap()), strip(decode(v1).unwrap()));
}

#[test]
fn errors_tell_users_what_is_wrong() {
    let cases: [(&str, &str); 8] = [
        ("   ", "empty line (a stream keep-alive), not a post"),
        (
            r#"{"data":{"id":"1","#,
            "not JSON (line 1, column 18): EOF while parsing a value",
        ),
        (
            "[]",
            "expected a JSON object holding a post, found an array",
        ),
        (
            r#"{"errors":[{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit."}]}"#,
            "an error message from X, not a post: ConnectionException (This stream is currently at the maximum allowed connection limit.)",
        ),
        (
            r#"{"delete":{"status":{"id_str":"1"}}}"#,
            "a JSON object but not a post: it has no `data` (X API v2) and no `id_str`, `user` or `text` (v1.1); its keys are [delete]",
        ),
        (
            r#"{"data":{"text":"hi"}}"#,
            "the post has no id: `data.id` is missing or empty",
        ),
        (
            r#"{"data":{"id":"1","public_metrics":{"like_count":-1}}}"#,
            "field `data.public_metrics.like_count` has the wrong type or value (column 51): invalid value: integer `-1`, expected u64",
        ),
        (
            r#"{"data":{"id":"1","created_at":"21/11/2026"}}"#,
            "`data.created_at` is not a valid timestamp (RFC 3339, like 2026-11-21T10:00:00.000Z): \"21/11/2026\"",
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(decode(line).unwrap_err().to_string(), expected, "{line}");
    }
}

#[test]
fn decode_errors_are_plain_values() {
    fn assert_error<E: std::error::Error + Send + Sync + Clone + 'static>() {}
    assert_error::<DecodeError>();
}

/// Prints decode throughput on the committed sample; run with
/// `cargo test --release -p tweetpipe --test decode -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, meaningful only in release builds"]
fn throughput_on_the_committed_sample() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
    let bytes: usize = lines.iter().map(|line| line.len()).sum();
    let rounds = 100;
    let started = Instant::now();
    let mut posts = 0usize;
    for _ in 0..rounds {
        for line in &lines {
            if let Ok(post) = decode(std::hint::black_box(line)) {
                posts += 1;
                std::hint::black_box(post);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{posts} posts in {seconds:.2} s: {:.0} posts/s, {:.0} MB/s",
        posts as f64 / seconds,
        (bytes * rounds) as f64 / seconds / 1e6
    );
}

/// Reads a v2 message with `serde_json::Value` the plain way, as the expected post.
fn expected_from_value(line: &str) -> Option<Post> {
    use serde_json::Value;
    let message: Value = serde_json::from_str(line).ok()?;
    let data = message.get("data")?.as_object()?;
    let string = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let id_of = |value: Option<&Value>| match value {
        Some(Value::Number(number)) => number.as_u64().map(|id| id.to_string()),
        other => string(other),
    };
    let count = |value: &Value, key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
    let list = |entities: Option<&Value>, key: &str, field: &str| -> Vec<String> {
        entities
            .and_then(|entities| entities.get(key))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| string(item.get(field)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let author_id = id_of(data.get("author_id")).unwrap_or_default();
    let user = message
        .pointer("/includes/users")
        .and_then(Value::as_array)
        .and_then(|users| {
            users
                .iter()
                .find(|user| id_of(user.get("id")).as_deref() == Some(author_id.as_str()))
        });
    let metrics = data.get("public_metrics").cloned().unwrap_or(Value::Null);
    let entities = data.get("entities");
    let kinds: Vec<String> = data
        .get("referenced_tweets")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().filter_map(|r| string(r.get("type"))).collect())
        .unwrap_or_default();
    let in_reply_to_user_id = id_of(data.get("in_reply_to_user_id")).filter(|id| !id.is_empty());
    let created_at = string(data.get("created_at")).map(|value| {
        chrono::DateTime::parse_from_rfc3339(&value)
            .unwrap()
            .with_timezone(&chrono::Utc)
    });
    let place_id = data.get("geo").and_then(|geo| id_of(geo.get("place_id")));
    let place = message
        .pointer("/includes/places")
        .and_then(Value::as_array)
        .and_then(|places| {
            places
                .iter()
                .find(|place| place_id.is_some() && id_of(place.get("id")) == place_id)
        })
        .map(|place| tweetpipe::post::Place {
            id: id_of(place.get("id")).unwrap_or_default(),
            full_name: string(place.get("full_name")).unwrap_or_default(),
            country_code: string(place.get("country_code")),
        });
    Some(Post {
        id: id_of(data.get("id"))?,
        created_at,
        text: string(data.get("text")).unwrap_or_default(),
        lang: string(data.get("lang")).unwrap_or_default(),
        author: tweetpipe::post::Author {
            id: author_id.clone(),
            username: user
                .and_then(|user| string(user.get("username")))
                .unwrap_or_default(),
            name: user
                .and_then(|user| string(user.get("name")))
                .unwrap_or_default(),
            location: user
                .and_then(|user| string(user.get("location")))
                .filter(|location| !location.trim().is_empty()),
            followers: user
                .and_then(|user| user.pointer("/public_metrics/followers_count"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            verified: user
                .and_then(|user| user.get("verified"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        metrics: tweetpipe::post::Metrics {
            retweets: count(&metrics, "retweet_count"),
            likes: count(&metrics, "like_count"),
            replies: count(&metrics, "reply_count"),
            quotes: count(&metrics, "quote_count"),
        },
        hashtags: list(entities, "hashtags", "tag"),
        mentions: list(entities, "mentions", "username"),
        cashtags: list(entities, "cashtags", "tag"),
        urls: entities
            .and_then(|entities| entities.get("urls"))
            .and_then(Value::as_array)
            .map(|urls| {
                urls.iter()
                    .filter_map(|url| string(url.get("expanded_url")).or(string(url.get("url"))))
                    .collect()
            })
            .unwrap_or_default(),
        place,
        is_retweet: kinds.iter().any(|kind| kind == "retweeted"),
        is_reply: kinds.iter().any(|kind| kind == "replied_to") || in_reply_to_user_id.is_some(),
        is_quote: kinds.iter().any(|kind| kind == "quoted"),
        has_media: data
            .get("attachments")
            .and_then(|attachments| attachments.get("media_keys"))
            .and_then(Value::as_array)
            .is_some_and(|keys| !keys.is_empty())
            || entities
                .and_then(|entities| entities.get("media"))
                .and_then(Value::as_array)
                .is_some_and(|media| !media.is_empty()),
        in_reply_to_user_id,
        matching_rules: message
            .get("matching_rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .map(|rule| tweetpipe::post::MatchingRule {
                        id: id_of(rule.get("id")).unwrap_or_default(),
                        tag: string(rule.get("tag")).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ..Post::default()
    })
}

/// Every sample post decodes to what a plain `serde_json::Value` reading gives.
#[test]
fn sample_posts_match_a_plain_value_reading() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let (mut compared, mut placed) = (0, 0);
    for line in text.lines() {
        let Ok(post) = decode(line) else { continue };
        let expected = expected_from_value(line).expect(line);
        placed += usize::from(post.place.is_some());
        assert_eq!(Post { raw: None, ..post }, expected, "{line}");
        compared += 1;
    }
    assert!(
        compared > 2900 && placed > 100,
        "{compared} posts, {placed} placed"
    );
}
