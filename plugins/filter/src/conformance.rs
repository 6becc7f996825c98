//! The conformance table: (rule, post, expected) cases from X's documented
//! rule examples and the edges of its semantics (tokenisation, accents,
//! precedence, negation, entity operators).

use tweetpipe_plugin::{Place, Post};

use crate::matcher::{RuleConfig, RuleSet, Scratch, leading_handles};
use crate::rule::{Expr, HasKind, IsKind, Term, parse};
use crate::text::{eq_lower, reference_tokens};

/// A post with every field empty but an id, a language and an author.
pub(crate) fn empty_post() -> Post {
    let mut post = Post {
        id: "1".to_owned(),
        lang: "en".to_owned(),
        ..Post::default()
    };
    post.author.id = "100".to_owned();
    post.author.username = "someone".to_owned();
    post.author.name = "Some One".to_owned();
    post
}

fn text(text: &str) -> Post {
    Post {
        text: text.to_owned(),
        ..empty_post()
    }
}

fn with(body: &str, change: impl FnOnce(&mut Post)) -> Post {
    let mut post = text(body);
    change(&mut post);
    post
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn geo() -> Option<Place> {
    Some(Place {
        id: "01a9a39529b27f36".to_owned(),
        full_name: "Manhattan, NY".to_owned(),
        country_code: Some("US".to_owned()),
    })
}

fn cases() -> Vec<(&'static str, Post, bool)> {
    vec![
        // Keywords: tokenised, whole tokens, case-insensitive.
        ("cat", text("I love my cat"), true),
        ("cat", text("I love my cats"), false),
        ("cat", text("CAT!"), true),
        ("cat", text("concatenate"), false),
        ("cat", text("#cat pics"), true),
        ("cat", text("@cat hi"), true),
        ("cat", text("cat.jpg"), true),
        ("Cat", text("my cAt"), true),
        // A word-final capital sigma lowers the same way in rules and text.
        ("ΟΔΟΣ", text("κλειστή ΟΔΟΣ"), true),
        ("ΟΔΟΣ", text("κλειστή οδοσ"), true),
        (
            "#ΟΔΟΣ",
            with("x", |post| post.hashtags = vec!["ΟΔΟΣ".to_owned()]),
            true,
        ),
        ("covid", text("covid19 numbers"), false),
        ("covid19", text("#COVID19 numbers"), true),
        ("2024", text("see you in 2024!"), true),
        ("rust_lang", text("learning #rust_lang"), true),
        ("rust", text("learning #rust_lang"), false),
        // Accents must match.
        ("cumpleaños", text("feliz cumpleaños"), true),
        ("cumpleaños", text("feliz cumpleanos"), false),
        ("cumpleanos", text("feliz cumpleaños"), false),
        ("CUMPLEAÑOS", text("Feliz Cumpleaños"), true),
        ("über", text("ÜBER alles"), true),
        ("uber", text("über alles"), false),
        ("café", text("cafe\u{301} au lait"), false),
        // Keywords with punctuation match consecutive tokens.
        ("e-mail", text("send an e-mail"), true),
        ("e-mail", text("email me"), false),
        ("don't", text("I don't know"), true),
        ("don't", text("I don’t know"), true),
        ("don't", text("I do not know"), false),
        // Emoji are tokens of their own.
        ("😷", text("masks 😷 on"), true),
        ("😷", text("masks😷on"), true),
        ("😷", text("masks on"), false),
        ("😷 covid", text("covid again 😷"), true),
        // Exact phrases: consecutive tokens, punctuation as space.
        ("\"happy birthday\"", text("Happy Birthday to you"), true),
        ("\"happy birthday\"", text("birthday happy"), false),
        ("\"happy birthday\"", text("happy, birthday!"), true),
        ("\"happy birthday\"", text("happy big birthday"), false),
        ("\"happy birthday\"", text("happy birthdays"), false),
        ("\"new york\"", text("New-York nights"), true),
        ("\"😷 #COVID19\"", text("stay safe 😷 #COVID19"), true),
        ("\"OR\" cat", text("cat OR dog"), true),
        ("\"OR\" cat", text("cat and dog"), false),
        (
            "\"twitter data\" -\"data science\"",
            text("Twitter data is fun"),
            true,
        ),
        (
            "\"twitter data\" -\"data science\"",
            text("Twitter data science"),
            false,
        ),
        // Implicit AND.
        ("happy birthday", text("birthday was happy"), true),
        ("happy birthday", text("happy day"), false),
        (
            "snow day #NoSchool",
            with("snow day!", |p| p.hashtags = strings(&["NoSchool"])),
            true,
        ),
        ("snow day #NoSchool", text("snow day #NoSchool"), false),
        // OR, and AND binding tighter than OR.
        ("apple OR iphone ipad", text("apple pie"), true),
        ("apple OR iphone ipad", text("iphone only"), false),
        ("apple OR iphone ipad", text("ipad and iphone"), true),
        ("(apple OR iphone) ipad", text("apple pie"), false),
        ("(apple OR iphone) ipad", text("apple ipad"), true),
        ("(apple OR iphone) ipad", text("my iphone and ipad"), true),
        ("cat OR dog OR bird", text("a bird"), true),
        ("cat OR dog OR bird", text("a fish"), false),
        ("cats or dogs", text("cats dogs"), false),
        ("cats or dogs", text("cats or dogs"), true),
        ("((a OR b) (c OR d)) -e", text("b d"), true),
        ("((a OR b) (c OR d)) -e", text("b d e"), false),
        ("((a OR b) (c OR d)) -e", text("b e"), false),
        // Negation.
        ("apple -iphone", text("apple"), true),
        ("apple -iphone", text("apple iPhone"), false),
        (
            "skiing -(snow OR day OR noschool)",
            text("skiing today"),
            true,
        ),
        (
            "skiing -(snow OR day OR noschool)",
            text("skiing in snow"),
            false,
        ),
        (
            "skiing -(snow OR day OR noschool)",
            text("skiing day"),
            false,
        ),
        ("cat (dog OR -mouse)", text("cat"), true),
        ("cat (dog OR -mouse)", text("cat mouse"), false),
        ("cat (dog OR -mouse)", text("cat mouse dog"), true),
        // #hashtag: the hashtag entity, not the word.
        (
            "#thanksgiving",
            with("", |p| p.hashtags = strings(&["Thanksgiving"])),
            true,
        ),
        ("#thanksgiving", text("happy thanksgiving"), false),
        (
            "#thanksgiving",
            with("", |p| p.hashtags = strings(&["thanksgiving2024"])),
            false,
        ),
        ("#café", with("", |p| p.hashtags = strings(&["CAFÉ"])), true),
        (
            "#café",
            with("", |p| p.hashtags = strings(&["Cafe"])),
            false,
        ),
        (
            "cat -#meme",
            with("cat", |p| p.hashtags = strings(&["meme"])),
            false,
        ),
        // @mention and $cashtag: the entities.
        (
            "@XDevelopers",
            with("", |p| p.mentions = strings(&["xdevelopers"])),
            true,
        ),
        ("@XDevelopers", text("hi @XDevelopers"), false),
        (
            "@jack -from:jack",
            with("", |p| p.mentions = strings(&["jack"])),
            true,
        ),
        ("$TWTR", with("", |p| p.cashtags = strings(&["twtr"])), true),
        ("$TWTR", text("buy $TWTR"), false),
        (
            "$TWTR",
            with("", |p| p.cashtags = strings(&["TWTRX"])),
            false,
        ),
        // from: and to:.
        (
            "from:XDevelopers",
            with("", |p| p.author.username = "XDevelopers".into()),
            true,
        ),
        (
            "from:xdevelopers",
            with("", |p| p.author.username = "XDevelopers".into()),
            true,
        ),
        (
            "from:2244994945",
            with("", |p| p.author.id = "2244994945".into()),
            true,
        ),
        (
            "from:jack",
            with("", |p| p.author.username = "jack2".into()),
            false,
        ),
        (
            "from:jack OR from:alice",
            with("", |p| p.author.username = "alice".into()),
            true,
        ),
        (
            "to:XDevelopers",
            with("@XDevelopers thanks", |p| p.is_reply = true),
            true,
        ),
        ("to:XDevelopers", text("@XDevelopers thanks"), false),
        (
            "to:2244994945",
            with("thanks", |p| {
                p.is_reply = true;
                p.in_reply_to_user_id = Some("2244994945".into());
            }),
            true,
        ),
        (
            "to:jack",
            with("@alice @Jack yes", |p| p.is_reply = true),
            true,
        ),
        (
            "to:jack",
            with("@alice yes @jack", |p| p.is_reply = true),
            false,
        ),
        // url:: a tokenised match in the expanded URLs.
        (
            "url:\"https://developer.twitter.com\"",
            with("", |p| {
                p.urls = strings(&["https://developer.twitter.com/en/docs"])
            }),
            true,
        ),
        (
            "url:github",
            with("", |p| p.urls = strings(&["https://github.com/x"])),
            true,
        ),
        (
            "url:github",
            with("", |p| p.urls = strings(&["https://notgithub.com/"])),
            false,
        ),
        (
            "url:\"github.com/rust-lang\"",
            with("", |p| {
                p.urls = strings(&["https://github.com/rust-lang/rust"])
            }),
            true,
        ),
        (
            "url:\"github.com/rust-lang\"",
            with("", |p| p.urls = strings(&["https://gitlab.com/rust-lang"])),
            false,
        ),
        ("url:github", text("https://github.com/x"), false),
        // lang:.
        ("cat lang:en", text("cat"), true),
        ("cat lang:en", with("cat", |p| p.lang = "fr".into()), false),
        ("cat -lang:en", with("cat", |p| p.lang = "fr".into()), true),
        ("cat lang:pt", with("cat", |p| p.lang = "PT".into()), true),
        // is:.
        (
            "cat is:retweet",
            with("RT cat", |p| p.is_retweet = true),
            true,
        ),
        ("cat is:retweet", text("cat"), false),
        (
            "cat -is:retweet",
            with("RT cat", |p| p.is_retweet = true),
            false,
        ),
        ("cat is:reply", with("cat", |p| p.is_reply = true), true),
        ("cat -is:reply", with("cat", |p| p.is_reply = true), false),
        ("cat is:quote", with("cat", |p| p.is_quote = true), true),
        ("cat is:quote", text("cat"), false),
        (
            "cat is:verified",
            with("cat", |p| p.author.verified = true),
            true,
        ),
        (
            "cat -is:verified",
            with("cat", |p| p.author.verified = true),
            false,
        ),
        // has:.
        (
            "cat has:links",
            with("cat", |p| p.urls = strings(&["https://a.b"])),
            true,
        ),
        ("cat has:links", text("cat"), false),
        ("cat has:links", with("cat", |p| p.has_media = true), true),
        (
            "cat has:hashtags",
            with("cat", |p| p.hashtags = strings(&["x"])),
            true,
        ),
        ("cat has:hashtags", text("cat #x"), false),
        (
            "cat has:mentions",
            with("cat", |p| p.mentions = strings(&["x"])),
            true,
        ),
        (
            "cat -has:mentions",
            with("cat", |p| p.mentions = strings(&["x"])),
            false,
        ),
        (
            "cat has:cashtags",
            with("cat", |p| p.cashtags = strings(&["x"])),
            true,
        ),
        ("cat has:media", with("cat", |p| p.has_media = true), true),
        ("cat has:media", text("cat"), false),
        ("cat has:geo", with("cat", |p| p.place = geo()), true),
        ("cat has:geo", text("cat"), false),
        // X's documented combinations.
        (
            "\"twitter data\" has:mentions (has:media OR has:links)",
            with("Twitter data rocks", |p| {
                p.mentions = strings(&["x"]);
                p.has_media = true;
            }),
            true,
        ),
        (
            "\"twitter data\" has:mentions (has:media OR has:links)",
            with("Twitter data rocks", |p| p.mentions = strings(&["x"])),
            false,
        ),
        (
            "(covid OR vaccine) lang:en -is:retweet",
            text("vaccine day"),
            true,
        ),
        (
            "(covid OR vaccine) lang:en -is:retweet",
            with("vaccine day", |p| p.is_retweet = true),
            false,
        ),
        (
            "(covid OR vaccine) lang:en -is:retweet",
            with("vaccine day", |p| p.lang = "de".into()),
            false,
        ),
        (
            "(covid OR vaccine) lang:en -is:retweet",
            text("flu day"),
            false,
        ),
        (
            "#nowplaying (happy OR exciting OR excited OR favorite OR fav OR amazing OR lovely OR incredible) (@spotify OR @applemusic)",
            with("my fav song", |p| {
                p.hashtags = strings(&["NowPlaying"]);
                p.mentions = strings(&["Spotify"]);
            }),
            true,
        ),
        (
            "(grumpy cat) OR (#meme has:links)",
            with("", |p| {
                p.hashtags = strings(&["meme"]);
                p.urls = strings(&["https://i.example"]);
            }),
            true,
        ),
        (
            "(grumpy cat) OR (#meme has:links)",
            text("grumpy old cat"),
            true,
        ),
        (
            "(grumpy cat) OR (#meme has:links)",
            text("grumpy dog"),
            false,
        ),
    ]
}

#[test]
fn the_conformance_table() {
    let cases = cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut scratch = Scratch::default();
    let mut failures = Vec::new();
    for (rule, post, expected) in &cases {
        let set = RuleSet::new(&[RuleConfig {
            value: (*rule).to_owned(),
            tag: Some("t".to_owned()),
        }])
        .unwrap_or_else(|error| panic!("rule {rule:?} is rejected: {error}"));
        let matched = set.matches(post, &mut scratch, |_| {}) == 1;
        if matched != *expected {
            failures.push(format!(
                "{rule:?} on {:?}: expected {expected}, got {matched}",
                post.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn all_matching_tags_are_reported_in_rule_order() {
    let rules: Vec<RuleConfig> = [
        ("cat", Some("pets")),
        ("dog", None),
        ("cat dog", Some("both")),
    ]
    .into_iter()
    .map(|(value, tag)| RuleConfig {
        value: value.to_owned(),
        tag: tag.map(str::to_owned),
    })
    .collect();
    let set = RuleSet::new(&rules).unwrap();
    let mut scratch = Scratch::default();
    let mut tags = Vec::new();
    let count = set.matches(&text("dog and cat"), &mut scratch, |tag| tags.push(tag));
    assert_eq!((count, tags), (3, vec!["pets", "dog", "both"]));
    let mut tags = Vec::new();
    set.matches(&text("dog"), &mut scratch, |tag| tags.push(tag));
    assert_eq!(tags, ["dog"]);
}

/// The benchmark's rules (`bench-rules.txt`, also read by
/// `daemon/benches/support/mod.rs`), the workload the matcher's shortcuts are
/// tuned for.
fn bench_rules() -> Vec<&'static str> {
    include_str!("../bench-rules.txt").lines().collect()
}

/// The rule language evaluated straight from the parsed rule, token lists
/// and all, with none of the matcher's compilation, bitsets or trigger
/// index: the oracle the matcher must agree with.
fn reference_eval(expr: &Expr, post: &Post, text_tokens: &[String]) -> bool {
    let contains = |haystack: &[String], needle: &[String]| {
        !needle.is_empty()
            && haystack
                .windows(needle.len())
                .any(|window| window == needle)
    };
    match expr {
        Expr::And(parts) => parts
            .iter()
            .all(|part| reference_eval(part, post, text_tokens)),
        Expr::Or(parts) => parts
            .iter()
            .any(|part| reference_eval(part, post, text_tokens)),
        Expr::Not(inner) => !reference_eval(inner, post, text_tokens),
        Expr::Term(term) => match term {
            Term::Keyword(value) | Term::Phrase(value) => {
                contains(text_tokens, &reference_list(value))
            }
            Term::Hashtag(tag) => post.hashtags.iter().any(|value| eq_lower(value, tag)),
            Term::Mention(user) => post.mentions.iter().any(|value| eq_lower(value, user)),
            Term::Cashtag(tag) => post.cashtags.iter().any(|value| eq_lower(value, tag)),
            Term::From(user) => post.author.id == *user || eq_lower(&post.author.username, user),
            Term::To(user) => {
                post.is_reply
                    && (post.in_reply_to_user_id.as_deref() == Some(user.as_str())
                        || leading_handles(&post.text).any(|handle| eq_lower(handle, user)))
            }
            Term::Url(value) => {
                let needle = reference_list(value);
                post.urls
                    .iter()
                    .any(|url| contains(&reference_list(url), &needle))
            }
            Term::Lang(lang) => post.lang.eq_ignore_ascii_case(lang),
            Term::Is(kind) => match kind {
                IsKind::Retweet => post.is_retweet,
                IsKind::Reply => post.is_reply,
                IsKind::Quote => post.is_quote,
                IsKind::Verified => post.author.verified,
            },
            Term::Has(kind) => match kind {
                HasKind::Links => !post.urls.is_empty() || post.has_media,
                HasKind::Hashtags => !post.hashtags.is_empty(),
                HasKind::Mentions => !post.mentions.is_empty(),
                HasKind::Cashtags => !post.cashtags.is_empty(),
                HasKind::Media => post.has_media,
                HasKind::Geo => post.place.is_some(),
            },
        },
    }
}

fn reference_list(text: &str) -> Vec<String> {
    let mut list = Vec::new();
    reference_tokens(text, &mut String::new(), |token| {
        list.push(token.to_owned())
    });
    list
}

/// A xorshift generator, so the random posts are the same on every run.
struct Random(u64);

impl Random {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next(items.len())]
    }

    fn some(&mut self, items: &[&str], most: usize) -> Vec<String> {
        (0..self.next(most + 1))
            .map(|_| self.pick(items).to_owned())
            .collect()
    }
}

fn random_post(random: &mut Random) -> Post {
    const WORDS: &[&str] = &[
        "covid",
        "COVID",
        "Covid19",
        "vaccine",
        "booster",
        "long",
        "Long",
        "vacina",
        "Impfung",
        "masks",
        "bus",
        "train",
        "tram",
        "eléctrico",
        "ELÉTRICO",
        "electrico",
        "28",
        "storm",
        "warning",
        "Unwetter",
        "calor",
        "golaço",
        "golaco",
        "marathon",
        "bridge",
        "city",
        "tonight",
        "earnings",
        "balanço",
        "stocks",
        "Börse",
        "BÖRSE",
        "nova",
        "Lark",
        "tickets",
        "entradas",
        "concert",
        "Konzert",
        "rust",
        "wasm",
        "java",
        "golang",
        "😭",
        "🔥",
        "🎸",
        "@synth_fan",
        "@SYNTH_FAN",
        "#COVID19",
        "e-mail",
        "happy",
        "birthday",
        "cat",
        "dog",
        "नमस्ते",
        "مرحبا",
        "東京",
        "İstanbul",
        "\u{212A}",
        "cafe\u{301}",
        "café",
        ",",
        "!",
        "-",
        "...",
        "👍🏽",
        "❤️",
        "OR",
        "the",
        "a",
    ];
    const SPACES: &[&str] = &[" ", " ", " ", "", ", ", "\n", "-", "’"];
    let mut text = String::new();
    if random.next(4) == 0 {
        text.push_str(random.pick(&["@synth_fan ", "@Synth_Fan @bob ", "  @alice "]));
    }
    for _ in 0..random.next(14) {
        text.push_str(random.pick(WORDS));
        text.push_str(random.pick(SPACES));
    }
    let mut post = empty_post();
    post.text = text;
    post.hashtags = random.some(
        &[
            "COVID19",
            "covid19",
            "LongCovid",
            "Lisbon",
            "LISBONLIFE",
            "NovaLarkLive",
            "cat",
            "İx",
            "CAFÉ",
            "Café",
            "cafe",
        ],
        2,
    );
    post.mentions = random.some(&["synth_dev", "SYNTH_DEV", "jack", "synth_fan"], 2);
    post.cashtags = random.some(&["ACME", "acme", "GLBX", "TSLA"], 2);
    post.urls = random.some(
        &[
            "https://example.com/a",
            "https://EXAMPLE.com",
            "https://example.org",
            "https://i.example",
        ],
        1,
    );
    post.lang = random
        .pick(&["en", "EN", "pt", "de", "es", "und"])
        .to_owned();
    post.author.username = random
        .pick(&["synth_fan", "Synth_Fan", "someone", "synth_dev"])
        .to_owned();
    post.author.id = random.pick(&["100", "2244994945"]).to_owned();
    post.author.verified = random.next(2) == 0;
    post.is_retweet = random.next(3) == 0;
    post.is_reply = random.next(3) == 0;
    post.is_quote = random.next(4) == 0;
    post.has_media = random.next(3) == 0;
    if random.next(3) == 0 {
        post.in_reply_to_user_id = Some(random.pick(&["2244994945", "synth_fan", "7"]).to_owned());
    }
    if random.next(5) == 0 {
        post.place = geo();
    }
    post
}

#[test]
fn the_matcher_agrees_with_the_reference_evaluator() {
    let cases = cases();
    let mut values: Vec<&str> = bench_rules();
    for (rule, _, _) in &cases {
        if !values.contains(rule) {
            values.push(rule);
        }
    }
    let configs: Vec<RuleConfig> = values
        .iter()
        .enumerate()
        .map(|(index, value)| RuleConfig {
            value: (*value).to_owned(),
            tag: Some(index.to_string()),
        })
        .collect();
    let set = RuleSet::new(&configs).unwrap();
    let exprs: Vec<Expr> = values.iter().map(|value| parse(value).unwrap()).collect();
    assert!(exprs.len() > 64, "more rules than one bitset word");
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let posts = cases
        .into_iter()
        .map(|(_, post, _)| post)
        .chain((0..5_000).map(|_| random_post(&mut random)));
    let mut scratch = Scratch::default();
    let mut matched_any = 0;
    for post in posts {
        let text_tokens = reference_list(&post.text);
        let expected: Vec<String> = exprs
            .iter()
            .enumerate()
            .filter(|(_, expr)| reference_eval(expr, &post, &text_tokens))
            .map(|(index, _)| index.to_string())
            .collect();
        let mut got = Vec::new();
        let count = set.matches(&post, &mut scratch, |tag| got.push(tag.to_owned()));
        assert_eq!(got, expected, "post {post:?}");
        assert_eq!(count, expected.len());
        matched_any += usize::from(!expected.is_empty());
    }
    assert!(matched_any > 1_000, "only {matched_any} posts match a rule");
}
