//! The plugin runtime through its public API and `tweetpipe plugin run|check`:
//! the SDK's ten-line plugin, chains, hostile plugins (loop, memory, panic,
//! fail, a poison post in a batch) and plugin files that must be refused with a
//! clear message.
//!
//! The `.wasm` files are built by `make plugins`; the tests fail (never skip)
//! when they are missing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tweetpipe::config::{OnError, PluginConfig};
use tweetpipe::plugins::{ChainRunner, LoadedChain, PluginError, RuntimeOptions, Verdict};
use tweetpipe::post::{AttrValue, Author, MatchingRule, Metrics, Place, Post};

mod support;

use support::cli::tweetpipe;
use support::wasm::plugin as wasm;

fn entry(name: &str, config: serde_json::Value) -> PluginConfig {
    PluginConfig {
        name: None,
        path: wasm(name),
        config: serde_json::from_value(config).expect("test config is a table"),
        on_error: OnError::DeadLetter,
        timeout: None,
        memory_mb: None,
        max_result_mb: None,
        max_post_kb: None,
        self_check: None,
    }
}

fn options() -> RuntimeOptions {
    RuntimeOptions {
        cache_dir: None,
        default_timeout: Duration::from_millis(200),
        default_memory_mb: 32,
    }
}

fn runner(plugins: &[PluginConfig]) -> ChainRunner {
    LoadedChain::load_with(plugins, &options())
        .unwrap_or_else(|error| panic!("loading the chain: {error}"))
        .instantiate()
        .unwrap_or_else(|error| panic!("instantiating the chain: {error}"))
}

fn post(id: &str, lang: &str, text: &str, urls: &[&str]) -> Post {
    Post {
        id: id.to_owned(),
        lang: lang.to_owned(),
        text: text.to_owned(),
        urls: urls.iter().map(|url| (*url).to_owned()).collect(),
        ..Post::default()
    }
}

fn posts(count: usize) -> Vec<Post> {
    (0..count)
        .map(|index| post(&index.to_string(), "en", "hello", &[]))
        .collect()
}

/// A post with every field set, to check nothing is lost on the way through.
fn full_post() -> Post {
    let mut attrs = std::collections::BTreeMap::new();
    attrs.insert("score".into(), AttrValue::Float(0.25));
    attrs.insert("flag".into(), AttrValue::Bool(true));
    attrs.insert("count".into(), AttrValue::Int(-3));
    attrs.insert("label".into(), AttrValue::Str("x".to_owned()));
    attrs.insert(
        "tags".into(),
        AttrValue::List(vec!["a".to_owned(), "b".to_owned()]),
    );
    Post {
        id: "1861000000000000002".to_owned(),
        created_at: Some("2026-11-21T10:00:00.123Z".parse().unwrap()),
        text: "@synth_dev what a night 🎶 #Concert https://t.co/x".to_owned(),
        lang: "en".to_owned(),
        author: Author {
            id: "2244994945".to_owned(),
            username: "synth_fan".to_owned(),
            name: "Synthetic Fan ✨".to_owned(),
            location: Some("London".to_owned()),
            followers: 512,
            verified: true,
        },
        metrics: Metrics {
            retweets: 12,
            likes: 140,
            replies: 3,
            quotes: 1,
        },
        hashtags: vec!["Concert".to_owned()],
        mentions: vec!["synth_dev".to_owned()],
        cashtags: vec!["ACME".to_owned()],
        urls: vec!["https://example.com/a".to_owned()],
        place: Some(Place {
            id: "01a9".to_owned(),
            full_name: "Manhattan, NY".to_owned(),
            country_code: Some("US".to_owned()),
        }),
        is_retweet: false,
        is_reply: true,
        is_quote: true,
        has_media: true,
        in_reply_to_user_id: Some("1".to_owned()),
        matching_rules: vec![MatchingRule {
            id: "100".to_owned(),
            tag: "music".to_owned(),
        }],
        attrs,
        raw: Some("{\"raw\":true}".into()),
    }
}

fn kept(verdict: &Verdict) -> &Post {
    match verdict {
        Verdict::Keep(post) => post,
        other => panic!("expected keep, got {other:?}"),
    }
}

#[test]
fn the_ten_line_plugin_keeps_english_posts_with_links() {
    let mut chain = runner(&[entry("only_english_with_links", serde_json::json!({}))]);
    let verdicts = chain.run(vec![
        post("1", "en", "read this", &["https://example.com"]),
        post("2", "en", "no link", &[]),
        post("3", "fr", "lisez", &["https://example.fr"]),
    ]);
    assert_eq!(verdicts.len(), 3);
    assert_eq!(kept(&verdicts[0]).id, "1");
    for verdict in &verdicts[1..] {
        match verdict {
            Verdict::Drop { plugin, reason } => {
                assert_eq!(plugin, "only_english_with_links");
                assert!(reason.contains("only_english_with_links"), "{reason}");
            }
            other => panic!("expected drop, got {other:?}"),
        }
    }
}

#[test]
fn every_field_survives_plugins_that_read_all_or_nothing() {
    let original = full_post();
    for plugin in ["noop_all_fields", "noop"] {
        let mut chain = runner(&[entry(plugin, serde_json::json!({}))]);
        let verdicts = chain.run(vec![original.clone()]);
        assert_eq!(kept(&verdicts[0]), &original, "through {plugin}");
    }
}

/// What the `echo_fields` fixture should report for `post`: one `name=value`
/// line per field, rendered the way the SDK hands the field to a plugin
/// (absent and empty optional strings are `None`, times are milliseconds).
fn echo_of(post: &Post) -> Vec<String> {
    let optional = |value: Option<&str>| value.filter(|value| !value.is_empty()).map(str::to_owned);
    let mut lines = vec![
        format!("id={}", post.id),
        format!(
            "created_at={:?}",
            post.created_at.map(|time| time.timestamp_millis())
        ),
        format!("text={}", post.text),
        format!("lang={}", post.lang),
        format!("author.id={}", post.author.id),
        format!("author.username={}", post.author.username),
        format!("author.name={}", post.author.name),
        format!(
            "author.location={:?}",
            optional(post.author.location.as_deref())
        ),
        format!("author.followers={}", post.author.followers),
        format!("author.verified={}", post.author.verified),
        format!(
            "metrics={},{},{},{}",
            post.metrics.retweets, post.metrics.likes, post.metrics.replies, post.metrics.quotes
        ),
        format!("hashtags={:?}", post.hashtags),
        format!("mentions={:?}", post.mentions),
        format!("cashtags={:?}", post.cashtags),
        format!("urls={:?}", post.urls),
        format!(
            "place={:?}",
            post.place.as_ref().map(|place| (
                &place.id,
                &place.full_name,
                optional(place.country_code.as_deref())
            ))
        ),
        format!(
            "kind={},{},{},{}",
            post.is_retweet, post.is_reply, post.is_quote, post.has_media
        ),
        format!(
            "in_reply_to_user_id={:?}",
            optional(post.in_reply_to_user_id.as_deref())
        ),
        format!(
            "matching_rules={:?}",
            post.matching_rules
                .iter()
                .map(|rule| (&rule.id, &rule.tag))
                .collect::<Vec<_>>()
        ),
    ];
    for (name, value) in &post.attrs {
        let value = match value {
            AttrValue::Bool(value) => value.to_string(),
            AttrValue::Int(value) => value.to_string(),
            AttrValue::Float(value) => value.to_string(),
            AttrValue::Str(value) => format!("{value:?}"),
            AttrValue::List(value) => format!("{value:?}"),
        };
        lines.push(format!("attr.{name}={value}"));
    }
    lines
}

#[test]
fn a_plugin_reading_every_field_receives_each_one_intact() {
    let full = full_post();
    let mut other = full_post();
    other.id = "1861000000000000003".to_owned();
    other.created_at = None;
    other.text = "RT plain text".to_owned();
    other.lang = "pt".to_owned();
    other.author.location = None;
    other.author.followers = u64::MAX;
    other.author.verified = false;
    other.metrics = Metrics {
        retweets: u64::MAX,
        likes: 0,
        replies: 7,
        quotes: 1 << 40,
    };
    other.hashtags = vec!["um".to_owned(), "dois".to_owned(), "três".to_owned()];
    other.mentions.clear();
    other.urls.clear();
    other.place = Some(Place {
        id: "x".to_owned(),
        full_name: "Lisboa".to_owned(),
        country_code: None,
    });
    (
        other.is_retweet,
        other.is_reply,
        other.is_quote,
        other.has_media,
    ) = (true, false, false, true);
    other.in_reply_to_user_id = None;
    other.matching_rules.push(MatchingRule {
        id: "101".to_owned(),
        tag: "second".to_owned(),
    });
    other.attrs.clear();
    let sparse = Post {
        id: "5".to_owned(),
        ..Post::default()
    };
    // Posts without attributes and with them are written differently: send
    // each filled post both ways, and each kind flag alone.
    let mut full_without_attrs = full.clone();
    full_without_attrs.attrs.clear();
    let mut other_with_attrs = other.clone();
    other_with_attrs.attrs.insert("n".into(), AttrValue::Int(1));
    let mut sent = vec![full, sparse, other, full_without_attrs, other_with_attrs];
    for flag in 0..4 {
        let mut post = Post {
            id: format!("{}", 10 + flag),
            ..Post::default()
        };
        *[
            &mut post.is_retweet,
            &mut post.is_reply,
            &mut post.is_quote,
            &mut post.has_media,
        ][flag] = true;
        sent.push(post);
    }
    let mut chain = runner(&[entry("echo_fields", serde_json::json!({}))]);
    let verdicts = chain.run(sent.clone());
    assert_eq!(verdicts.len(), sent.len());
    for (post, verdict) in sent.iter().zip(&verdicts) {
        let seen = match kept(verdict).attrs.get("seen") {
            Some(AttrValue::List(lines)) => lines.clone(),
            other => panic!("post {}: `seen` is {other:?}", post.id),
        };
        assert_eq!(seen, echo_of(post), "post {}", post.id);
    }
}

#[test]
fn every_outcome_and_change_a_plugin_returns_arrives_intact() {
    let with_text = |text: &str| {
        let mut post = full_post();
        post.text = text.to_owned();
        post.attrs.insert("old".into(), AttrValue::Int(7));
        post
    };
    let texts = ["keep", "set", "drop", "plain ✓", "fail", "clear", "set"];
    let sent: Vec<Post> = texts.iter().map(|text| with_text(text)).collect();
    let verdicts = runner(&[entry("change_all", serde_json::json!({}))]).run(sent.clone());
    assert_eq!(verdicts.len(), sent.len());

    let mut set = with_text("tëxt ✓");
    set.lang = "pt".to_owned();
    set.author.id = "u_1".to_owned();
    set.author.username = "someone".to_owned();
    set.author.name = "Some One".to_owned();
    set.author.location = Some("Lisboa".to_owned());
    set.mentions = vec!["a".to_owned(), "ß".to_owned()];
    set.urls = vec!["https://example.com/".to_owned()];
    set.in_reply_to_user_id = Some("42".to_owned());
    for (name, value) in [
        ("yes", AttrValue::Bool(true)),
        ("no", AttrValue::Bool(false)),
        ("min", AttrValue::Int(i64::MIN)),
        ("max", AttrValue::Int(i64::MAX)),
        ("float", AttrValue::Float(-0.125)),
        ("text", AttrValue::Str("😀 ok".to_owned())),
        ("empty", AttrValue::Str(String::new())),
        (
            "texts",
            AttrValue::List(vec!["x".to_owned(), String::new(), "z".to_owned()]),
        ),
        ("none", AttrValue::List(Vec::new())),
    ] {
        set.attrs.insert(name.into(), value);
    }
    let mut clear = with_text("");
    clear.author.location = None;
    clear.in_reply_to_user_id = None;
    clear.mentions.clear();
    clear.urls.clear();
    clear.attrs.remove("old");
    let mut plain = with_text("plain ✓");
    plain
        .attrs
        .insert("echo".into(), AttrValue::Str("plain ✓".to_owned()));

    assert_eq!(kept(&verdicts[0]), &sent[0], "keep");
    assert_eq!(kept(&verdicts[1]), &set, "set");
    match &verdicts[2] {
        Verdict::Drop { plugin, reason } => {
            assert_eq!(plugin, "change_all");
            assert!(reason.contains("change_all"), "{reason}");
        }
        other => panic!("drop: unexpected {other:?}"),
    }
    assert_eq!(kept(&verdicts[3]), &plain, "plain");
    match &verdicts[4] {
        Verdict::Fail { post, error, .. } => {
            assert_eq!(post, &sent[4]);
            assert_eq!(error, "asked to fail");
        }
        other => panic!("fail: unexpected {other:?}"),
    }
    assert_eq!(kept(&verdicts[5]), &clear, "clear");
    assert_eq!(kept(&verdicts[6]), &set, "set, again");
}

#[test]
fn a_chain_applies_configs_and_changes_in_order() {
    let mut chain = runner(&[
        entry("drop_retweets", serde_json::json!({})),
        entry("keep_lang", serde_json::json!({ "lang": "pt" })),
        entry(
            "keyword_filter",
            serde_json::json!({ "keywords": ["Rust", "wasm"] }),
        ),
    ]);
    let mut retweet = post("1", "pt", "rust rt", &[]);
    retweet.is_retweet = true;
    let mut original = full_post();
    original.id = "4".to_owned();
    original.lang = "pt".to_owned();
    original.text = "Eu gosto de WASM".to_owned();
    let verdicts = chain.run(vec![
        retweet,
        post("2", "en", "rust", &[]),
        post("3", "pt", "nada", &[]),
        original.clone(),
    ]);
    let plugin_of = |verdict: &Verdict| match verdict {
        Verdict::Drop { plugin, .. } => plugin.clone(),
        other => panic!("expected drop, got {other:?}"),
    };
    assert_eq!(plugin_of(&verdicts[0]), "drop_retweets");
    assert_eq!(plugin_of(&verdicts[1]), "keep_lang");
    assert_eq!(plugin_of(&verdicts[2]), "keyword_filter");
    // keyword_filter only reads the text; everything else must be intact, plus its attribute.
    let mut expected = original;
    expected
        .attrs
        .insert("keyword".into(), AttrValue::Str("wasm".to_owned()));
    assert_eq!(kept(&verdicts[3]), &expected);
}

#[test]
fn a_panic_on_one_post_dead_letters_only_that_post_and_the_chain_recovers() {
    let mut chain = runner(&[entry("hostile_panic", serde_json::json!({ "poison": "5" }))]);
    let verdicts = chain.run(posts(10));
    assert_eq!(verdicts.len(), 10);
    for (index, verdict) in verdicts.iter().enumerate() {
        if index == 5 {
            match verdict {
                Verdict::Fail {
                    post,
                    plugin,
                    error,
                } => {
                    assert_eq!(post.id, "5");
                    assert_eq!(plugin, "hostile_panic");
                    assert!(
                        error.contains("panicked") && error.contains("poison post 5"),
                        "{error}"
                    );
                }
                other => panic!("expected the poison post to fail, got {other:?}"),
            }
        } else {
            let post = kept(verdict);
            assert_eq!(post.id, index.to_string());
            assert_eq!(post.attrs.get("survived"), Some(&AttrValue::Bool(true)));
        }
    }
    // The next batch runs on a fresh instance.
    let verdicts = chain.run(posts(5).into_iter().filter(|post| post.id != "5").collect());
    assert!(
        verdicts
            .iter()
            .all(|verdict| matches!(verdict, Verdict::Keep(_)))
    );
}

#[test]
fn an_infinite_loop_is_interrupted_by_the_deadline() {
    let mut chain = runner(&[entry("hostile_loop", serde_json::json!({ "poison": "2" }))]);
    let started = Instant::now();
    let verdicts = chain.run(posts(4));
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    for (index, verdict) in verdicts.iter().enumerate() {
        match verdict {
            Verdict::Fail { plugin, error, .. } if index == 2 => {
                assert_eq!(plugin, "hostile_loop");
                assert!(error.contains("CPU deadline of 200 ms"), "{error}");
            }
            Verdict::Keep(post) if index != 2 => assert_eq!(post.id, index.to_string()),
            other => panic!("post {index}: unexpected {other:?}"),
        }
    }
}

#[test]
fn memory_growth_stops_at_the_cap() {
    let mut chain = runner(&[entry(
        "hostile_memory",
        serde_json::json!({ "poison": "1" }),
    )]);
    let verdicts = chain.run(posts(3));
    match &verdicts[1] {
        Verdict::Fail { error, .. } => {
            assert!(error.contains("memory cap of 32 MiB"), "{error}")
        }
        other => panic!("expected the poison post to fail, got {other:?}"),
    }
    assert_eq!(kept(&verdicts[0]).id, "0");
    assert_eq!(kept(&verdicts[2]).id, "2");
}

#[test]
fn fail_outcomes_follow_on_error() {
    let mut plugin = entry("hostile_fail", serde_json::json!({ "poison": "1" }));
    let mut run = |on_error| {
        plugin.on_error = on_error;
        runner(std::slice::from_ref(&plugin)).run(posts(3))
    };
    match &run(OnError::DeadLetter)[1] {
        Verdict::Fail { post, error, .. } => {
            assert_eq!(post.id, "1");
            assert_eq!(error, "cannot score post 1");
        }
        other => panic!("dead-letter: unexpected {other:?}"),
    }
    match &run(OnError::Drop)[1] {
        Verdict::Drop { plugin, reason } => {
            assert_eq!(plugin, "hostile_fail");
            assert_eq!(reason, "cannot score post 1");
        }
        other => panic!("drop: unexpected {other:?}"),
    }
    let verdicts = run(OnError::Pass);
    assert!(
        verdicts
            .iter()
            .all(|verdict| matches!(verdict, Verdict::Keep(_)))
    );
}

#[test]
fn throughput_recovers_after_a_poison_post() {
    let mut chain = runner(&[entry(
        "hostile_panic",
        serde_json::json!({ "poison": "poison" }),
    )]);
    let clean = || posts(64);
    let time = |chain: &mut ChainRunner| {
        let started = Instant::now();
        for _ in 0..20 {
            let verdicts = chain.run(clean());
            assert!(
                verdicts
                    .iter()
                    .all(|verdict| matches!(verdict, Verdict::Keep(_)))
            );
        }
        started.elapsed()
    };
    let before = time(&mut chain);
    let mut batch = clean();
    batch[10].id = "poison".to_owned();
    let verdicts = chain.run(batch);
    assert_eq!(
        verdicts
            .iter()
            .filter(|verdict| matches!(verdict, Verdict::Fail { .. }))
            .count(),
        1
    );
    let after = time(&mut chain);
    assert!(
        after < before * 3 + Duration::from_millis(50),
        "clean batches took {before:?} before the poison post and {after:?} after"
    );
}

fn load_error(plugin: PluginConfig) -> String {
    match LoadedChain::load_with(&[plugin], &options()) {
        Ok(_) => panic!("the plugin loaded but should have been refused"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn bad_plugin_files_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let with_path = |name: &str, path: PathBuf| PluginConfig {
        name: Some(name.to_owned()),
        path,
        config: toml::Table::new(),
        on_error: OnError::DeadLetter,
        timeout: None,
        memory_mb: None,
        max_result_mb: None,
        max_post_kb: None,
        self_check: None,
    };

    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "this is not wasm").unwrap();
    let message = load_error(with_path("notes", text));
    assert!(message.starts_with("plugin notes:"), "{message}");
    assert!(message.contains("not a WebAssembly file"), "{message}");

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let message = load_error(with_path("core", core));
    assert!(
        message.contains("core WebAssembly module, not a component"),
        "{message}"
    );
    assert!(message.contains("wasm32-wasip2"), "{message}");

    let message = load_error(with_path("ghost", dir.path().join("ghost.wasm")));
    assert!(
        message.contains("plugin ghost:") && message.contains("does not exist"),
        "{message}"
    );

    let message = load_error(entry("other_contract", serde_json::json!({})));
    assert!(message.contains("plugin other_contract:"), "{message}");
    assert!(
        message.contains("built for contract tweetpipe:plugin@9.0.0")
            && message.contains("rebuild it"),
        "{message}"
    );

    let message = load_error(entry("hostile_init", serde_json::json!({})));
    assert!(
        message.contains("plugin hostile_init: rejected its configuration"),
        "{message}"
    );
    assert!(message.contains("config.threshold is missing"), "{message}");
    let error = LoadedChain::load_with(
        &[entry("hostile_init", serde_json::json!({ "threshold": 3 }))],
        &options(),
    )
    .unwrap_err();
    assert!(matches!(error, PluginError::Init { .. }), "{error}");
    LoadedChain::load_with(
        &[entry(
            "hostile_init",
            serde_json::json!({ "threshold": 0.5 }),
        )],
        &options(),
    )
    .expect("a valid config is accepted");
}

#[test]
fn compiled_plugins_are_cached_and_a_corrupt_entry_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        ..options()
    };
    let plugins = [entry("noop", serde_json::json!({}))];
    LoadedChain::load_with(&plugins, &options).unwrap();
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].extension().is_some_and(|ext| ext == "cwasm"));
    // A warm load works, and so does one after the entry is damaged.
    LoadedChain::load_with(&plugins, &options).unwrap();
    let length = std::fs::metadata(&entries[0]).unwrap().len();
    let bytes = std::fs::read(&entries[0]).unwrap();
    std::fs::write(&entries[0], &bytes[..bytes.len() / 2]).unwrap();
    let mut chain = LoadedChain::load_with(&plugins, &options)
        .unwrap()
        .instantiate()
        .unwrap();
    assert!(matches!(chain.run(posts(1))[0], Verdict::Keep(_)));
    assert_eq!(
        std::fs::metadata(&entries[0]).unwrap().len(),
        length,
        "rewritten"
    );
}

#[test]
fn the_loaded_chain_is_shared_by_worker_threads() {
    fn assert_shareable<T: Send + Sync + Clone>() {}
    fn assert_sendable<T: Send>() {}
    assert_shareable::<LoadedChain>();
    assert_sendable::<ChainRunner>();
    let chain =
        LoadedChain::load_with(&[entry("noop", serde_json::json!({}))], &options()).unwrap();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let chain = chain.clone();
            std::thread::spawn(move || chain.instantiate().unwrap().run(posts(8)).len())
        })
        .collect();
    for worker in workers {
        assert_eq!(worker.join().unwrap(), 8);
    }
}

const V2_WITH_LINK: &str = r#"{"data":{"id":"101","text":"read https://t.co/a","lang":"en","entities":{"urls":[{"start":5,"end":24,"url":"https://t.co/a","expanded_url":"https://example.com/a"}]}}}"#;
const V2_NO_LINK: &str = r#"{"data":{"id":"102","text":"just words","lang":"en"}}"#;

#[test]
fn plugin_run_prints_one_verdict_per_input_line() {
    let plugin = wasm("only_english_with_links");
    let input = format!("{V2_WITH_LINK}\n{V2_NO_LINK}\nnot json\n");
    let (code, stdout, stderr) = tweetpipe(
        &["plugin", "run", plugin.to_str().unwrap(), "--input", "-"],
        &input,
    );
    assert_eq!(code, 0, "stderr: {stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["id"], "101");
    assert_eq!(lines[0]["action"], "keep");
    assert_eq!(lines[0]["post"]["urls"][0], "https://example.com/a");
    assert_eq!(lines[1]["id"], "102");
    assert_eq!(lines[1]["action"], "drop");
    assert_eq!(lines[1]["plugin"], "only_english_with_links");
    assert_eq!(lines[2]["action"], "error");
    assert!(
        stderr.contains("1 kept, 1 dropped, 0 failed, 1 lines not decodable"),
        "{stderr}"
    );
}

#[test]
fn plugin_run_chains_plugins_with_their_configs() {
    let lang = wasm("keep_lang");
    let keywords = wasm("keyword_filter");
    let (code, stdout, stderr) = tweetpipe(
        &[
            "plugin",
            "run",
            "--plugin",
            lang.to_str().unwrap(),
            "--plugin",
            keywords.to_str().unwrap(),
            "--plugin-config",
            r#"{"lang":"en"}"#,
            "--plugin-config",
            r#"{"keywords":["words"]}"#,
            "--input",
            "-",
        ],
        &format!("{V2_WITH_LINK}\n{V2_NO_LINK}\n"),
    );
    assert_eq!(code, 0, "stderr: {stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["action"], "drop");
    assert_eq!(lines[0]["plugin"], "keyword_filter");
    assert_eq!(lines[1]["action"], "keep");
    assert_eq!(lines[1]["post"]["attrs"]["keyword"], "words");
}

#[test]
fn plugin_commands_refuse_bad_plugins_with_exit_code_2() {
    let (code, _, stderr) = tweetpipe(
        &["plugin", "run", "/nonexistent/missing.wasm", "--input", "-"],
        "",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("plugin missing:") && stderr.contains("does not exist"),
        "{stderr}"
    );

    let init = wasm("hostile_init");
    let (code, _, stderr) = tweetpipe(
        &[
            "plugin",
            "run",
            init.to_str().unwrap(),
            "--plugin-config",
            r#"{"threshold": 7}"#,
            "--input",
            "-",
        ],
        "",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("rejected its configuration"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn plugin_check_describes_a_plugin() {
    let plugin = wasm("keep_lang");
    let (code, stdout, stderr) = tweetpipe(&["plugin", "check", plugin.to_str().unwrap()], "");
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.contains("name:     keep-lang"), "{stdout}");
    assert!(
        stdout.contains("contract: tweetpipe:plugin@0.3.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("exports:  tweetpipe:plugin/processor@0.3.0"),
        "{stdout}"
    );
    assert!(stdout.contains("reads:    lang"), "{stdout}");

    let other = wasm("other_contract");
    let (code, _, stderr) = tweetpipe(&["plugin", "check", other.to_str().unwrap()], "");
    assert_eq!(code, 2);
    assert!(stderr.contains("tweetpipe:plugin@9.0.0"), "{stderr}");
}

/// `plugin run` with the bare-WIT `hostile-wasi` fixture in `config`, on three sample posts.
fn run_hostile_wasi(config: &str) -> (i32, String, String) {
    let posts: String = std::fs::read_to_string(support::cli::sample_posts())
        .unwrap()
        .lines()
        .filter(|line| line.contains("\"text\""))
        .take(3)
        .map(|line| format!("{line}\n"))
        .collect();
    let plugin = wasm("hostile_wasi");
    tweetpipe(
        &[
            "plugin",
            "run",
            plugin.to_str().unwrap(),
            "--plugin-config",
            config,
            "--input",
            "-",
        ],
        &posts,
    )
}

/// Issue 19: a plugin sleeping (monotonic-clock subscribe + poll) hung its
/// worker forever; with frozen clocks the sleep returns at once, in `init`
/// and in `process`.
#[test]
fn a_sleeping_plugin_does_not_block() {
    for config in [r#"{"mode": "sleep"}"#, r#"{"mode": "sleep", "in": "init"}"#] {
        let started = std::time::Instant::now();
        let (code, _, stderr) = run_hostile_wasi(config);
        assert_eq!(code, 0, "{config}: {stderr}");
        assert!(stderr.contains("3 kept"), "{config}: {stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}

/// Issue 19: output in `init` and `process` is a log, not a crash, and never
/// the command's own stdout.
#[test]
fn a_printing_plugin_runs_and_its_output_stays_off_stdout() {
    for config in [r#"{"mode": "print"}"#, r#"{"mode": "print", "in": "init"}"#] {
        let (code, stdout, stderr) = run_hostile_wasi(config);
        assert_eq!(code, 0, "{config}: {stderr}");
        assert!(stderr.contains("3 kept"), "{config}: {stderr}");
        assert!(!stdout.contains("hostile-wasi:"), "{config}: {stdout}");
    }
}

/// Issue 19: `exit` used to read "error while executing at wasm backtrace:".
#[test]
fn a_plugin_calling_exit_fails_its_posts_with_a_clear_reason() {
    let (code, stdout, stderr) = run_hostile_wasi(r#"{"mode": "exit"}"#);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("3 failed"), "{stderr}");
    assert!(stdout.contains("called exit(1)"), "{stdout}");
    let (code, _, stderr) = run_hostile_wasi(r#"{"mode": "exit", "in": "init"}"#);
    assert_ne!(code, 0);
    assert!(stderr.contains("`init` failed: called exit(1)"), "{stderr}");
}

/// Issue 19: a `memory_mb` past what wasm32 addresses was accepted silently.
#[test]
fn memory_mb_beyond_4_gib_is_rejected() {
    let text = "[source.replay]\npath = \"p.jsonl\"\n\n[sink.null]\n\n[dead_letter]\npath = \"d.jsonl\"\n\n[[plugins]]\npath = \"p.wasm\"\nmemory_mb = 5000\n";
    let error = tweetpipe::config::Config::parse(text, std::path::Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("plugins[0].memory_mb") && error.contains("4096"),
        "{error}"
    );
}

/// Issue 19: a 48 MiB text was committed; a post's changes are now capped.
#[test]
fn a_huge_returned_text_fails_its_post() {
    let (code, stdout, stderr) = run_hostile_wasi(r#"{"mode": "huge", "mib": 1}"#);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("3 failed"), "{stderr}");
    assert!(stdout.contains("past the limit of 256 KiB"), "{stdout}");
}

/// Python and JavaScript runtimes import the WASI filesystem and sockets, so
/// they are linked, empty: a plugin probing them loads and gets nothing, not
/// even a loopback connection to a port that is listening.
#[test]
fn file_and_network_probes_find_nothing() {
    let (code, stdout, stderr) = run_hostile_wasi(r#"{"mode": "files"}"#);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("3 dropped"), "{stderr}");
    assert!(!stdout.contains("LEAKED"), "{stdout}");
    assert!(stdout.contains("read /etc/passwd:"), "{stdout}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (code, stdout, stderr) =
        run_hostile_wasi(&format!(r#"{{"mode": "net", "addr": "{addr}"}}"#));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("3 dropped"), "{stderr}");
    assert!(!stdout.contains("LEAKED"), "{stdout}");
    assert!(stdout.contains(&format!("tcp {addr}:")), "{stdout}");
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the plugin reached a loopback listener"
    );
}

/// Issue 19: the limits on what a plugin returns are its entry's
/// `max_post_kb` and `max_result_mb`, and the messages name them.
#[test]
fn result_limits_come_from_the_plugins_entry() {
    // Compiled once for the four entries.
    let cache = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        ..options()
    };
    let huge = |kib: u64, max_post_kb: Option<u64>, max_result_mb: Option<u64>| {
        let mut plugin = entry(
            "hostile_wasi",
            serde_json::json!({ "mode": "huge", "kib": kib }),
        );
        plugin.max_post_kb = max_post_kb;
        plugin.max_result_mb = max_result_mb;
        LoadedChain::load_with(&[plugin], &options)
            .unwrap()
            .instantiate()
            .unwrap()
            .run(posts(8))
    };
    // 100 KiB changes: under the default of 256 KiB, over a limit of 64 KiB.
    for verdict in huge(100, None, None) {
        assert_eq!(kept(&verdict).text.len(), 100 * 1024);
    }
    for verdict in huge(100, Some(64), None) {
        match verdict {
            Verdict::Fail { error, .. } => assert!(
                error.contains("past the limit of 64 KiB") && error.contains("max_post_kb"),
                "{error}"
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    // 8 posts of 200 KiB are past a 1 MiB result: the batch is retried post
    // by post, and the retries share the budget: 5 posts fit, 3 fail.
    let verdicts = huge(200, None, Some(1));
    for verdict in &verdicts[..5] {
        assert_eq!(kept(verdict).text.len(), 200 * 1024);
    }
    for verdict in &verdicts[5..] {
        match verdict {
            Verdict::Fail { error, .. } => assert!(
                error.contains("past its limit of 1024 KiB per batch with the 1000 KiB it returned for the batch's other posts"),
                "{error}"
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    // One post past the call's limit fails, with the key to raise.
    for verdict in huge(1500, Some(2048), Some(1)) {
        match verdict {
            Verdict::Fail { error, .. } => assert!(
                error.contains("past its limit of 1024 KiB") && error.contains("max_result_mb"),
                "{error}"
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}

/// The limits' keys are checked like `memory_mb`.
#[test]
fn result_limit_keys_out_of_range_are_rejected() {
    for (key, value, expected) in [
        ("max_post_kb", 0, "must be at least 1"),
        ("max_result_mb", 0, "must be at least 1"),
        ("max_result_mb", 5000, "at most 4096"),
    ] {
        let text = format!(
            "[source.replay]\npath = \"p.jsonl\"\n\n[sink.null]\n\n[dead_letter]\npath = \"d.jsonl\"\n\n[[plugins]]\npath = \"p.wasm\"\n{key} = {value}\n"
        );
        let error = tweetpipe::config::Config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("plugins[0].{key}")) && error.contains(expected),
            "{key} = {value}: {error}"
        );
    }
}

/// Issue 19: output cut or over the rate is counted per plugin, and exported
/// in /metrics.
#[test]
fn dropped_plugin_output_is_counted_in_the_metrics() {
    let mut plugin = entry("hostile_wasi", serde_json::json!({ "mode": "print" }));
    plugin.name = Some("chatty".to_owned());
    // 2001 writes take more than the 200 ms the other tests allow in a debug build.
    plugin.timeout = Some(Duration::from_secs(5));
    let verdicts = runner(&[plugin]).run(posts(1));
    assert!(matches!(verdicts[0], Verdict::Keep(_)), "{verdicts:?}");
    // One call prints a 10 KiB line and 2000 short ones; 50 lines a second
    // per stream are logged.
    let dropped = tweetpipe::plugins::output_lines_dropped()
        .into_iter()
        .find(|(name, _)| name == "chatty")
        .map(|(_, count)| count);
    assert!(dropped.is_some_and(|count| count > 1000), "{dropped:?}");
    let text = tweetpipe::metrics::Metrics::new().encode().unwrap();
    let line = text
        .lines()
        .find(|line| {
            line.starts_with("tweetpipe_plugin_output_lines_dropped_total{plugin=\"chatty\"}")
        })
        .unwrap_or_else(|| panic!("no counter for chatty:\n{text}"));
    let value: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= dropped.unwrap(), "{line}");
}

/// Issue 19: a wrongly typed export named nothing; the message names the
/// function and the signature the contract declares.
#[test]
fn a_wrongly_typed_export_is_named_with_its_expected_signature() {
    let message = load_error(entry("wrong_export", serde_json::json!({})));
    assert!(message.starts_with("plugin wrong_export:"), "{message}");
    assert!(
        message
            .contains("export `process` of `tweetpipe:plugin/processor@0.3.0` has the wrong type"),
        "{message}"
    );
    assert!(
        message.contains("process: func(batch: batch) -> list<outcome>"),
        "{message}"
    );
}

/// Issue 19: `plugin check` names every import and whether it is granted,
/// also when an ungranted one keeps the plugin from loading.
#[test]
fn plugin_check_lists_the_imports_of_a_plugin_it_refuses() {
    let plugin = wasm("extra_import");
    let (code, stdout, stderr) = tweetpipe(&["plugin", "check", plugin.to_str().unwrap()], "");
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("fixture:secrets/store: NOT granted"),
        "{stdout}"
    );
    assert!(stdout.contains(": granted ("), "its WASI imports: {stdout}");
    assert!(
        stderr.contains("plugin extra_import: needs a capability")
            && stderr.contains("it imports `fixture:secrets/store`, not granted"),
        "{stderr}"
    );
}

/// The `hostile-alias` fixture (its `process` lowered by hand, every outcome
/// pointing at one buffer of its memory) with `config`, on `count` posts in
/// one batch, at 64 MiB of memory (so 16 MiB of results per batch).
fn run_hostile_alias(
    config: serde_json::Value,
    max_post_kb: Option<u64>,
    count: usize,
) -> Vec<Verdict> {
    let mut plugin = entry("hostile_alias", config);
    plugin.memory_mb = Some(64);
    plugin.max_post_kb = max_post_kb;
    runner(&[plugin]).run(posts(count))
}

/// `plugin run` with the `hostile-alias` fixture and `args` on `count`
/// distinct sample posts, in one batch.
fn plugin_run_hostile_alias(args: &[&str], count: usize) -> (i32, String, String) {
    let mut seen = std::collections::HashSet::new();
    let posts: String = std::fs::read_to_string(support::cli::sample_posts())
        .unwrap()
        .lines()
        .filter(|line| line.contains("\"text\""))
        .filter(|line| seen.insert(tweetpipe::post::decode(line).unwrap().id))
        .take(count)
        .map(|line| format!("{line}\n"))
        .collect();
    let plugin = wasm("hostile_alias");
    let mut command = vec!["plugin", "run", plugin.to_str().unwrap(), "--input", "-"];
    command.extend_from_slice(args);
    tweetpipe(&command, &posts)
}

/// The outcomes, lowered by hand in the fixture, are well formed: a short text shared by every
/// outcome, and a shared list of mentions, are lifted and applied to each
/// post, in-process and through `plugin run`. (Without this, the tests below
/// could pass on a fixture that is simply broken.)
#[test]
fn a_hand_lowered_plugin_sharing_one_short_text_is_applied() {
    let verdicts = run_hostile_alias(serde_json::json!({ "text": "one shared text" }), None, 8);
    assert_eq!(verdicts.len(), 8);
    for (index, verdict) in verdicts.iter().enumerate() {
        let post = kept(verdict);
        assert_eq!(post.id, index.to_string());
        assert_eq!(post.text, "one shared text");
    }
    for verdict in run_hostile_alias(serde_json::json!({ "items": 3 }), None, 8) {
        assert_eq!(kept(&verdict).mentions, ["", "", ""]);
    }

    let (code, stdout, stderr) =
        plugin_run_hostile_alias(&["--plugin-config", r#"{"text": "one shared text"}"#], 3);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("3 kept"), "{stderr}");
    assert_eq!(
        stdout.matches(r#""text":"one shared text""#).count(),
        3,
        "{stdout}"
    );
}

/// Issue 19: one 4 MiB buffer returned as the text of every post of a batch
/// took the daemon's RSS to 0.5-2.1 GiB, a copy per post. Each post counts
/// the whole text: past `max_post_kb` every post fails; with the post limit
/// raised to 4 MiB, the batch's 16 MiB budget (`max_result_mb`) keeps 4 posts
/// and fails the rest with the key to raise.
#[test]
fn one_buffer_returned_for_every_post_counts_once_per_post() {
    for verdict in run_hostile_alias(serde_json::json!({}), None, 8) {
        match verdict {
            Verdict::Fail { plugin, error, .. } => {
                assert_eq!(plugin, "hostile_alias");
                assert!(
                    error.contains("returned 4096 KiB for one post, past the limit of 256 KiB")
                        && error.contains("max_post_kb"),
                    "{error}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    let verdicts = run_hostile_alias(serde_json::json!({}), Some(4096), 8);
    for verdict in &verdicts[..4] {
        assert_eq!(kept(verdict).text.len(), 4 * 1024 * 1024);
    }
    for verdict in &verdicts[4..] {
        match verdict {
            Verdict::Fail { plugin, error, .. } => {
                assert_eq!(plugin, "hostile_alias");
                assert!(
                    error.contains("past its limit of 16384 KiB per batch with the 16384 KiB it returned for the batch's other posts")
                        && error.contains("max_result_mb"),
                    "{error}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    // The same through `plugin run`.
    let (code, stdout, stderr) = plugin_run_hostile_alias(&[], 8);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 kept, 0 dropped, 8 failed"), "{stderr}");
    assert_eq!(
        stdout.matches("(`max_post_kb` of its").count(),
        8,
        "{stdout}"
    );
    let (code, stdout, stderr) = plugin_run_hostile_alias(&["--max-post-kb", "4096"], 8);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("4 kept, 0 dropped, 4 failed"), "{stderr}");
    assert_eq!(
        stdout.matches("(`max_result_mb` of its").count(),
        4,
        "{stdout}"
    );
}

/// Issue 19: one list of empty strings returned as every post's `mentions`
/// carries no string bytes, yet costs the host a string per item per post:
/// 100,000 items (800 KB of the plugin's memory) are 2.4 MB on the host for
/// each post, past the post limit.
#[test]
fn one_list_of_empty_strings_returned_for_every_post_is_counted() {
    for verdict in run_hostile_alias(serde_json::json!({ "items": 100_000 }), None, 8) {
        match verdict {
            Verdict::Fail { error, .. } => assert!(
                error.contains("past the limit of 256 KiB") && error.contains("max_post_kb"),
                "{error}"
            ),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}

/// Issue 19: 300,000 outcomes (42 MB of the plugin's memory, each an empty
/// text, so within every byte limit) for a batch of 8 were lifted whole, a
/// host `Vec` of them allocated, before their count was checked. Their
/// records alone are past the batch's budget, so lifting stops there, and
/// every post fails with it after the retry post by post.
#[test]
fn a_list_of_outcomes_longer_than_the_batch_fails_at_its_budget() {
    let config = serde_json::json!({ "text": "", "outcomes": 300_000 });
    for verdict in run_hostile_alias(config.clone(), None, 8) {
        match verdict {
            Verdict::Fail { plugin, error, .. } => {
                assert_eq!(plugin, "hostile_alias");
                assert!(
                    error.contains("returned more than the 16384 KiB left")
                        && error.contains("max_result_mb"),
                    "{error}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    let (code, stdout, stderr) =
        plugin_run_hostile_alias(&["--plugin-config", &config.to_string()], 3);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 kept, 0 dropped, 3 failed"), "{stderr}");
    assert_eq!(
        stdout
            .matches("returned more than the 16384 KiB left")
            .count(),
        3,
        "{stdout}"
    );
}

/// `count` posts through the UTF-16 plugin of `support::utf16` whose every
/// outcome is `text`, with a 64 MiB memory cap and the default result limits.
fn run_utf16(text: &support::utf16::Text, count: usize) -> Vec<Verdict> {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let plugin = PluginConfig {
        path: support::utf16::plugin(dir.path(), text),
        memory_mb: Some(64),
        ..entry("noop", serde_json::json!({}))
    };
    runner(&[plugin]).run(posts(count))
}

/// A component may choose UTF-16 for its strings; wasmtime lifts those, not
/// the host's own lifting, and they are applied like any other. (Without
/// this, the test below could pass on a fixture that is simply broken.)
#[test]
fn a_plugin_whose_strings_are_utf16_is_applied() {
    let verdicts = run_utf16(&support::utf16::Text::Chars("héllo wörld ✓"), 8);
    assert_eq!(verdicts.len(), 8);
    for verdict in &verdicts {
        assert_eq!(kept(verdict).text, "héllo wörld ✓");
    }
}

/// Issue 19: the result limits hold for a UTF-16 plugin too. Its one 4 MiB
/// buffer of U+7A7A, returned as every post's text, is 6 MiB on the host per
/// post: past `max_post_kb`, each post fails and nothing is copied. Texts of
/// 180 KiB on the host each are within the post limit, and the batch's 16 MiB
/// budget (`max_result_mb`) keeps what fits and fails the rest.
#[test]
fn a_utf16_plugin_returning_one_buffer_for_every_post_is_bounded() {
    let huge = support::utf16::Text::Filled {
        units: 2 * 1024 * 1024,
    };
    for verdict in run_utf16(&huge, 8) {
        match verdict {
            Verdict::Fail { error, .. } => assert!(
                error.contains("past the limit of 256 KiB") && error.contains("max_post_kb"),
                "{error}"
            ),
            Verdict::Keep(post) => panic!("kept a text of {} bytes", post.text.len()),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    let units = 60 * 1024;
    let verdicts = run_utf16(&support::utf16::Text::Filled { units }, 200);
    let kept: Vec<&Post> = verdicts
        .iter()
        .filter_map(|verdict| match verdict {
            Verdict::Keep(post) => Some(post),
            _ => None,
        })
        .collect();
    let host_bytes = units as usize * 3;
    assert!(!kept.is_empty(), "some posts fit the budget");
    assert!(
        kept.len() * host_bytes <= 16 * 1024 * 1024,
        "{} posts of {host_bytes} bytes were kept, past the 16 MiB budget",
        kept.len()
    );
    for post in &kept {
        assert_eq!(post.text.len(), host_bytes);
    }
    for verdict in &verdicts {
        if let Verdict::Fail { error, .. } = verdict {
            assert!(error.contains("max_result_mb"), "{error}");
        }
    }
    assert_eq!(
        verdicts
            .iter()
            .filter(|verdict| matches!(verdict, Verdict::Fail { .. }))
            .count(),
        200 - kept.len()
    );
}
