//! Deterministic synthetic posts in the X API v2 filtered-stream shape, for demos and tests.
//!
//! [`write_sample`] writes one JSON message per line, like the filtered stream does:
//! `data` + `includes.users` + `includes.places` + `matching_rules`, in eight
//! languages and six topics, with retweets, replies, quotes, hashtags, mentions,
//! cashtags, links, emoji and some personal data (e-mail addresses, phone numbers,
//! test card numbers) for scrubbing plugins to find. Like the real stream it also
//! carries a few duplicates, malformed messages and blank keep-alive lines.
//!
//! All users, artists, teams and tickers are fictional. The output depends only on
//! the options: the generator draws integers from a seeded ChaCha8 stream, formats
//! no floating-point numbers and iterates no hash maps, so the same seed gives
//! byte-identical output on every machine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, BufWriter, Write};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOptions {
    /// Well-formed post lines to write, duplicates included (malformed and blank
    /// lines come on top).
    pub count: usize,
    /// The seed: the same options always give the same bytes.
    pub seed: u64,
    /// The `created_at` of the first post.
    pub start: DateTime<Utc>,
    /// Roughly how long the posts' `created_at` values span.
    pub span: TimeDelta,
    /// How many distinct (fictional) authors to draw from.
    pub users: usize,
    /// On average one malformed line per this many posts; 0 for none.
    pub malformed_every: u32,
    /// On average one exact duplicate of a recent line per this many posts; 0 for none.
    pub duplicate_every: u32,
    /// On average one blank keep-alive line per this many posts; 0 for none.
    pub blank_every: u32,
}

impl Default for SampleOptions {
    /// The options of the committed sample file.
    fn default() -> Self {
        Self {
            count: 3000,
            seed: 42,
            start: Utc
                .with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
                .single()
                .unwrap_or_default(),
            span: TimeDelta::hours(12),
            users: 400,
            malformed_every: 200,
            duplicate_every: 200,
            blank_every: 100,
        }
    }
}

/// What [`write_sample`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SampleSummary {
    /// Every line, blank ones included.
    pub lines: usize,
    /// Lines that decode to a post (duplicates included).
    pub posts: usize,
    /// Distinct post ids among them.
    pub unique_ids: usize,
    /// Lines repeating an earlier post line exactly.
    pub duplicates: usize,
    /// Lines that do not decode to a post (cut-short JSON, an X error message, a
    /// post without an id, a field of the wrong type).
    pub malformed: usize,
    /// Empty keep-alive lines.
    pub blank: usize,
}

/// Writes `options.count` synthetic posts (plus malformed and blank lines), one JSON
/// message per line.
pub fn write_sample(options: &SampleOptions, out: &mut impl Write) -> io::Result<SampleSummary> {
    let mut out = BufWriter::new(out);
    let mut generator = Generator::new(options);
    let mut summary = SampleSummary::default();
    let mut recent: VecDeque<String> = VecDeque::with_capacity(RECENT_LINES);
    while summary.posts < options.count {
        if generator.dice.one_in(options.blank_every) {
            out.write_all(b"\n")?;
            summary.blank += 1;
        }
        if generator.dice.one_in(options.malformed_every) {
            let malformed = generator.malformed()?;
            out.write_all(malformed.as_bytes())?;
            out.write_all(b"\n")?;
            summary.malformed += 1;
        }
        if !recent.is_empty() && generator.dice.one_in(options.duplicate_every) {
            let index = generator.dice.below(recent.len() as u64) as usize;
            out.write_all(recent[index].as_bytes())?;
            out.write_all(b"\n")?;
            summary.duplicates += 1;
            summary.posts += 1;
            continue;
        }
        let line = serde_json::to_string(&generator.post()).map_err(io::Error::other)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        summary.posts += 1;
        summary.unique_ids += 1;
        if recent.len() == RECENT_LINES {
            recent.pop_front();
        }
        recent.push_back(line);
    }
    out.flush()?;
    summary.lines = summary.posts + summary.malformed + summary.blank;
    Ok(summary)
}

/// Duplicates repeat one of this many latest lines, as after a stream reconnect.
const RECENT_LINES: usize = 16;
/// Retweets, replies and quotes refer to one of this many latest posts.
const RECENT_POSTS: usize = 64;
/// A space and a `t.co` link, in characters.
const LINK_LEN: usize = 24;
/// X's snowflake epoch (2010-11-04T01:42:54.657Z), in milliseconds.
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// Integer-only draws from a seeded ChaCha8 stream.
struct Dice(ChaCha8Rng);

impl Dice {
    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// True with probability `1 / n`; never when `n` is 0.
    fn one_in(&mut self, n: u32) -> bool {
        n != 0 && self.below(u64::from(n)) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A short `t.co`-like code.
    fn code(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
        (0..len).map(|_| char::from(*self.pick(ALPHABET))).collect()
    }

    /// A heavy-tailed count: mostly small, sometimes large.
    fn heavy(&mut self, max_digits: u32) -> u64 {
        let digits = self.below(u64::from(max_digits) + 1) as u32;
        self.below(10u64.pow(digits))
    }
}

/// Zipf-like choice among `n` items: item `rank` weighs `1 / (rank + offset)`.
struct Zipf {
    cumulative: Vec<u64>,
}

impl Zipf {
    fn new(n: usize, offset: u64) -> Self {
        let mut total = 0;
        let cumulative = (0..n.max(1))
            .map(|rank| {
                total += 1_000_000 / (rank as u64 + offset);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, dice: &mut Dice) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let draw = dice.below(total);
        self.cumulative.partition_point(|&edge| edge <= draw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Es,
    Fr,
    De,
    Pt,
    Ja,
    Ar,
    Hi,
}

impl Lang {
    const ALL: [Lang; 8] = [
        Lang::En,
        Lang::Es,
        Lang::Fr,
        Lang::De,
        Lang::Pt,
        Lang::Ja,
        Lang::Ar,
        Lang::Hi,
    ];

    fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::Pt => "pt",
            Lang::Ja => "ja",
            Lang::Ar => "ar",
            Lang::Hi => "hi",
        }
    }

    /// Short sentences to lengthen a post towards 280 characters.
    fn fillers(self) -> &'static [&'static str] {
        match self {
            Lang::En => &[
                "Honestly did not expect this.",
                "More thoughts later.",
                "Anyone else seeing the same?",
                "Long day, but a good one.",
                "Will post an update tonight.",
                "Not financial or medical advice, just my two cents.",
                "Tell me I'm wrong.",
            ],
            Lang::Es => &[
                "La verdad, no me lo esperaba.",
                "Mañana os cuento más.",
                "¿A alguien más le pasa?",
                "Día largo pero bonito.",
                "Os leo en los comentarios.",
                "Esto hay que verlo en directo.",
                "Guardad este post para luego.",
            ],
            Lang::Fr => &[
                "Honnêtement, je ne m'y attendais pas.",
                "La suite demain.",
                "Quelqu'un d'autre a vu ça ?",
                "Longue journée mais belle journée.",
                "Je vous lis en commentaires.",
                "Franchement, à voir absolument.",
                "Je garde ça pour plus tard.",
            ],
            Lang::De => &[
                "Ehrlich gesagt hätte ich das nicht erwartet.",
                "Mehr dazu später.",
                "Sieht das noch jemand so?",
                "Langer Tag, aber ein guter.",
                "Schreibt mir eure Meinung.",
                "Das muss man live gesehen haben.",
                "Merke ich mir für später.",
            ],
            Lang::Pt => &[
                "Sinceramente, não esperava isso.",
                "Depois conto mais.",
                "Mais alguém viu isso?",
                "Dia longo, mas valeu a pena.",
                "Contem nos comentários.",
                "Isso tem que ser visto ao vivo.",
                "Guardem este post para depois.",
            ],
            Lang::Ja => &[
                "正直びっくりした。",
                "また後で書きます。",
                "みんなはどう思う？",
                "長い一日だったけど楽しかった。",
                "コメントで教えてね。",
                "これは生で見るべき。",
                "あとでまた見返そう。",
            ],
            Lang::Ar => &[
                "بصراحة لم أتوقع هذا.",
                "سأكتب المزيد لاحقاً.",
                "هل لاحظ أحد غيري؟",
                "يوم طويل لكنه جميل.",
                "شاركوني آراءكم في التعليقات.",
                "يجب أن تروا هذا بأنفسكم.",
                "سأحفظ هذا لوقت لاحق.",
            ],
            Lang::Hi => &[
                "सच कहूं तो इसकी उम्मीद नहीं थी।",
                "बाकी बातें बाद में।",
                "क्या किसी और ने भी देखा?",
                "लंबा दिन था, पर अच्छा रहा।",
                "कमेंट में अपनी राय बताइए।",
                "इसे तो लाइव देखना चाहिए।",
                "इसे बाद के लिए सेव कर रहा हूं।",
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    Pandemic,
    Concert,
    Stocks,
    City,
    Weather,
    Sports,
}

impl Topic {
    const ALL: [Topic; 6] = [
        Topic::Pandemic,
        Topic::Concert,
        Topic::Stocks,
        Topic::City,
        Topic::Weather,
        Topic::Sports,
    ];

    /// The filtered-stream rule this topic's posts match (weather and sports posts
    /// carry the city hashtag).
    fn rule(self) -> (&'static str, &'static str) {
        match self {
            Topic::Pandemic => ("1896523465419083776", "covid"),
            Topic::Concert => ("1896523465419083777", "music"),
            Topic::Stocks => ("1896523465419083778", "stocks"),
            Topic::City | Topic::Weather | Topic::Sports => ("1896523465419083779", "city"),
        }
    }

    fn emoji(self) -> &'static [&'static str] {
        match self {
            Topic::Pandemic => &["💉", "😷", "🦠", "🙏", "💪"],
            Topic::Concert => &["🎶", "🎤", "🔥", "😭", "✨", "🎸"],
            Topic::Stocks => &["📈", "📉", "🚀", "💸", "🤔"],
            Topic::City => &["🌇", "🚋", "❤️", "📸", "🌉"],
            Topic::Weather => &["☀️", "🌧️", "⛈️", "🌡️"],
            Topic::Sports => &["⚽", "🏃", "🏆", "👏"],
        }
    }

    fn links(self) -> &'static [&'static str] {
        match self {
            Topic::Pandemic => &[
                "https://health.example.org/vaccines/booster-faq",
                "https://news.example.com/2026/03/01/case-numbers-weekly",
                "https://journal.example.net/articles/long-covid-cohort",
            ],
            Topic::Concert => &[
                "https://tickets.example.net/nova-lark/world-tour",
                "https://video.example.com/watch/nova-lark-live-encore",
            ],
            Topic::Stocks => &[
                "https://markets.example.com/quote/ACME",
                "https://markets.example.com/earnings/q4-2025",
            ],
            Topic::City | Topic::Weather | Topic::Sports => &[
                "https://city.example.org/transport/notices",
                "https://weather.example.com/forecast/lisbon",
                "https://sport.example.com/riverton-fc/match-report",
            ],
        }
    }
}

/// Templates: `{emoji}`, `{city}` (a city hashtag), `{ticker}`/`{ticker2}`
/// (cashtags), `{n}`, `{pct}` and `{temp}` are filled in per post.
fn templates(lang: Lang, topic: Topic) -> &'static [&'static str] {
    use Lang::*;
    use Topic::*;
    match (lang, topic) {
        (En, Pandemic) => &[
            "Got my booster today {emoji} arm is a bit sore but worth it #VaccinesWork #COVID19",
            "Cases up {n}% this week in our county. Masks back on the bus? #COVID19 #pandemic",
            "New study on long covid symptoms is worth a read {emoji} #LongCovid #COVID19",
            "Vaccine clinic at the library is open until 7pm, no appointment needed {city} #COVID19",
        ],
        (En, Concert) => &[
            "Just got tickets for Nova Lark at the arena!!! {emoji} #NovaLarkLive",
            "Nova Lark opened with the new single and the whole crowd sang along {emoji} #NovaLarkLive #concert",
            "Anyone selling 2 tickets for Nova Lark on Saturday? DM me {emoji} #NovaLarkLive",
        ],
        (En, Stocks) => &[
            "{ticker} up {pct}% premarket after earnings beat {emoji} watching {ticker2} next #stocks",
            "Sold half my {ticker} position, too much volatility for me this week #investing",
            "{ticker} guidance looks weak {emoji} #stocks #earnings",
        ],
        (En, City) => &[
            "Sunset from the viewpoint tonight {emoji} {city}",
            "Tram 28 is packed again, walking is faster {city} #commute",
            "New bakery on the corner makes the best pastries in town {emoji} {city}",
        ],
        (En, Weather) => &[
            "{temp}°C already at 9am, stay hydrated everyone {emoji} {city} #heatwave",
            "Storm warning for tonight, bring your plants in {emoji} {city} #weather",
        ],
        (En, Sports) => &[
            "What a goal in the {n}th minute! Riverton FC take the lead {emoji} {city} #matchday",
            "Marathon route closes the bridge on Sunday, plan ahead {emoji} {city}",
        ],
        (Es, Pandemic) => &[
            "Hoy me puse la dosis de refuerzo {emoji} todo bien #vacunación #COVID19",
            "Suben los contagios un {n}% otra vez, usen mascarilla en el transporte #COVID19",
        ],
        (Es, Concert) => &[
            "¡Tengo entradas para Nova Lark! No me lo creo {emoji} #NovaLarkLive",
            "El concierto de Nova Lark fue increíble, lloré con la última canción {emoji} #NovaLarkLive",
        ],
        (Es, Stocks) => {
            &["{ticker} sube un {pct}% tras los resultados. ¿Comprar o esperar? #bolsa"]
        }
        (Es, City) => &["Qué bonita está la ciudad esta tarde {emoji} {city}"],
        (Es, Weather) => &["{temp} grados y sin una nube, ¡a la playa! {emoji} {city} #calor"],
        (Es, Sports) => &["¡Golazo en el minuto {n}! Riverton FC por delante {emoji} {city}"],
        (Fr, Pandemic) => &[
            "Rappel de vaccin fait ce matin {emoji} petite fatigue mais ça va #COVID19 #vaccination",
        ],
        (Fr, Concert) => &["Le concert de Nova Lark hier soir était magique {emoji} #NovaLarkLive"],
        (Fr, Stocks) => &["{ticker} recule de {pct}% à l'ouverture, prudence {emoji} #bourse"],
        (Fr, City) => &["Balade au bord du fleuve ce soir {emoji} {city}"],
        (Fr, Weather) => &["Alerte orages ce soir, rentrez vos plantes {emoji} {city} #météo"],
        (Fr, Sports) => &["Quel match ! Victoire {n} à 1 à domicile {emoji} {city}"],
        (De, Pandemic) => {
            &["Heute die Auffrischungsimpfung bekommen {emoji} Arm tut etwas weh #Impfung #COVID19"]
        }
        (De, Concert) => {
            &["Nova Lark live war einfach der Wahnsinn {emoji} #NovaLarkLive #Konzert"]
        }
        (De, Stocks) => {
            &["{ticker} steigt um {pct}% nach den Quartalszahlen {emoji} #Börse #Aktien"]
        }
        (De, City) => &["Sonntagsspaziergang durch die Altstadt {emoji} {city}"],
        (De, Weather) => &["{temp} Grad im Schatten, trinkt genug {emoji} {city} #Hitze"],
        (De, Sports) => &["Was für ein Tor in der {n}. Minute! {emoji} {city} #Fußball"],
        (Pt, Pandemic) => {
            &["Tomei a dose de reforço hoje {emoji} braço dolorido mas tudo certo #vacina #COVID19"]
        }
        (Pt, Concert) => &["Ingressos para a Nova Lark garantidos!!! {emoji} #NovaLarkLive"],
        (Pt, Stocks) => {
            &["{ticker} sobe {pct}% depois do balanço, será que ainda dá tempo? #bolsa"]
        }
        (Pt, City) => &[
            "Fim de tarde lindo no miradouro {emoji} {city}",
            "O elétrico 28 está cheio outra vez {emoji} {city}",
        ],
        (Pt, Weather) => &["Que calor! {temp} graus e ainda nem é meio-dia {emoji} {city}"],
        (Pt, Sports) => &["Golaço aos {n} minutos! {emoji} {city} #futebol"],
        (Ja, Pandemic) => &["今日はブースター接種してきた {emoji} 腕が少し痛い #ワクチン #COVID19"],
        (Ja, Concert) => &["Nova Larkのライブ最高だった {emoji} #NovaLarkLive"],
        (Ja, Stocks) => &["{ticker} 決算後に{pct}%上昇、様子見かな {emoji} #株式投資"],
        (Ja, City) => &["夕焼けがきれいすぎる {emoji} {city}"],
        (Ja, Weather) => &["気温{temp}度、水分補給を忘れずに {emoji} {city} #熱中症"],
        (Ja, Sports) => &["{n}分のゴール、鳥肌立った {emoji} {city}"],
        (Ar, Pandemic) => {
            &["أخذت الجرعة المعززة اليوم {emoji} الحمد لله كل شيء بخير #كورونا #COVID19"]
        }
        (Ar, Concert) => &["حفل Nova Lark كان رائعاً {emoji} #NovaLarkLive"],
        (Ar, Stocks) => &["سهم {ticker} يرتفع {pct}% بعد النتائج {emoji} #الأسهم"],
        (Ar, City) => &["غروب جميل الليلة {emoji} {city}"],
        (Ar, Weather) => &["الحرارة {temp} درجة اليوم، اشربوا الماء {emoji} {city}"],
        (Ar, Sports) => &["هدف رائع في الدقيقة {n} {emoji} {city}"],
        (Hi, Pandemic) => &["आज बूस्टर डोज़ लगवा ली {emoji} सब ठीक है #वैक्सीन #COVID19"],
        (Hi, Concert) => &["Nova Lark का कॉन्सर्ट शानदार था {emoji} #NovaLarkLive"],
        (Hi, Stocks) => &["{ticker} में {pct}% की तेजी, नतीजे उम्मीद से बेहतर {emoji} #शेयरबाजार"],
        (Hi, City) => &["आज शाम का नज़ारा {emoji} {city}"],
        (Hi, Weather) => &["{temp} डिग्री तापमान, पानी पीते रहें {emoji} {city} #गर्मी"],
        (Hi, Sports) => &["{n}वें मिनट में शानदार गोल {emoji} {city}"],
    }
}

const TICKERS: &[&str] = &["$ACME", "$GLBX", "$NVLK", "$QNTM", "$ZEPH", "$ORBT"];
const CITY_TAGS: &[&str] = &["#Lisbon", "#Lisbon", "#Lisboa", "#LisbonLife"];

/// Personal data for scrubbing plugins: fictional addresses, numbers reserved for
/// fiction, and payment-card test numbers. `{email}` is filled in per post.
const PII: &[&str] = &[
    "email me at {email} for the spare ticket",
    "my number is +1-202-555-01{nn}, text me",
    "call +44 20 7946 0{nn}{d} after 6pm",
    "paid with 4111 1111 1111 1111 and it still says pending??",
    "card 5555-5555-5555-4444 got declined twice, what is going on",
    "test card 4242424242424242 exp 12/28 cvc 123 lol",
    "escríbeme a {email}",
    "contact: {email} / +33 1 99 00 {nn} {nn}",
];

const ADJECTIVES: &[&str] = &[
    "quiet", "brisk", "amber", "lunar", "mossy", "rapid", "velvet", "cobalt", "sunny", "misty",
    "fuzzy", "salty", "lucky", "gentle", "noisy", "dusty", "frosty", "golden", "hidden", "silver",
];
const ANIMALS: &[&str] = &[
    "otter", "heron", "lynx", "badger", "gecko", "marten", "puffin", "walrus", "tapir", "ibis",
    "newt", "quokka", "bison", "koala", "finch", "yak", "orca", "lemur", "mole", "stoat",
];

/// Free-text profile locations, most common first, with the language their users
/// mostly post in (`None` for any).
const LOCATIONS: &[(&str, Option<Lang>)] = &[
    ("Lisboa, Portugal", Some(Lang::Pt)),
    ("London, England", Some(Lang::En)),
    ("NYC 🗽", Some(Lang::En)),
    ("São Paulo, Brasil", Some(Lang::Pt)),
    ("Madrid, España", Some(Lang::Es)),
    ("Paris, France", Some(Lang::Fr)),
    ("東京都", Some(Lang::Ja)),
    ("Mumbai, India", Some(Lang::Hi)),
    ("Berlin, Deutschland", Some(Lang::De)),
    ("Los Angeles, CA", Some(Lang::En)),
    ("New York, NY", Some(Lang::En)),
    ("Earth 🌍", None),
    ("Dubai, UAE", Some(Lang::Ar)),
    ("Lisbon", Some(Lang::En)),
    ("Ciudad de México", Some(Lang::Es)),
    ("Toronto, Ontario", Some(Lang::En)),
    ("القاهرة، مصر", Some(Lang::Ar)),
    ("नई दिल्ली", Some(Lang::Hi)),
    ("Buenos Aires, Argentina", Some(Lang::Es)),
    ("Lyon, France", Some(Lang::Fr)),
    ("Hamburg", Some(Lang::De)),
    ("大阪", Some(Lang::Ja)),
    ("Rio de Janeiro", Some(Lang::Pt)),
    ("Montréal, QC", Some(Lang::Fr)),
    ("Chicago, IL", Some(Lang::En)),
    ("the internet", None),
    ("Sydney, Australia", Some(Lang::En)),
    ("she/her | Bay Area", Some(Lang::En)),
    ("Barcelona", Some(Lang::Es)),
    ("Porto 🇵🇹", Some(Lang::Pt)),
    ("Riyadh, Saudi Arabia", Some(Lang::Ar)),
    ("Bengaluru", Some(Lang::Hi)),
    ("München, Bayern", Some(Lang::De)),
    ("Austin, TX", Some(Lang::En)),
    ("somewhere over the rainbow 🌈", None),
    ("Manchester, UK", Some(Lang::En)),
    ("Lagos, Nigeria", Some(Lang::En)),
    ("Dublin, Ireland", Some(Lang::En)),
    ("everywhere & nowhere", None),
    ("london", Some(Lang::En)),
];

/// Overall language mix, in per-mille, for users without a telling location.
const LANG_WEIGHTS: [(Lang, u64); 8] = [
    (Lang::En, 420),
    (Lang::Es, 130),
    (Lang::Pt, 100),
    (Lang::Fr, 80),
    (Lang::Ja, 90),
    (Lang::De, 70),
    (Lang::Ar, 55),
    (Lang::Hi, 55),
];

/// Tagged places: `(id, full_name, country_code)`, the city of the `city` rule first.
const PLACES: &[(&str, &str, &str)] = &[
    ("5c8d3a1f0e2b4d67", "Lisbon, Portugal", "PT"),
    ("5c8d3a1f0e2b4d67", "Lisbon, Portugal", "PT"),
    ("5c8d3a1f0e2b4d67", "Lisbon, Portugal", "PT"),
    ("0a1b2c3d4e5f6071", "Manhattan, NY", "US"),
    ("1f2e3d4c5b6a7988", "London, England", "GB"),
    ("2b3c4d5e6f708192", "Paris, France", "FR"),
    ("3c4d5e6f708192a3", "Madrid, Spain", "ES"),
    ("4d5e6f708192a3b4", "São Paulo, Brazil", "BR"),
    ("5e6f708192a3b4c5", "Berlin, Germany", "DE"),
    ("6f708192a3b4c5d6", "Shibuya, Tokyo", "JP"),
    ("708192a3b4c5d6e7", "Mumbai, India", "IN"),
    ("8192a3b4c5d6e7f8", "Dubai, United Arab Emirates", "AE"),
];

struct User {
    id: String,
    username: String,
    name: String,
    location: Option<&'static str>,
    lang: Lang,
    followers: u64,
    following: u64,
    tweets: u64,
    verified: bool,
}

/// A post already written, that later posts may retweet, reply to or quote.
struct Earlier {
    id: String,
    author: usize,
    text: String,
    lang: Lang,
    topic: Topic,
}

struct Generator {
    dice: Dice,
    users: Vec<User>,
    by_username: BTreeMap<String, usize>,
    activity: Zipf,
    now_ms: i64,
    mean_gap_ms: u64,
    recent: VecDeque<Earlier>,
    malformed: u64,
}

impl Generator {
    fn new(options: &SampleOptions) -> Self {
        let mut dice = Dice(ChaCha8Rng::seed_from_u64(options.seed));
        let location_rank = Zipf::new(LOCATIONS.len(), 1);
        let mut ids = BTreeSet::new();
        let mut usernames = BTreeSet::new();
        let mut users = Vec::with_capacity(options.users);
        while users.len() < options.users.max(2) {
            let digits = dice.between(8, 19) as u32;
            let low = 10u64.pow(digits - 1);
            let high = if digits == 19 {
                1_900_000_000_000_000_000
            } else {
                10u64.pow(digits) - 1
            };
            let id = dice.between(low, high);
            let adjective = *dice.pick(ADJECTIVES);
            let animal = *dice.pick(ANIMALS);
            let number = dice.below(1000);
            let username = format!("synth_{adjective}_{animal}{number}");
            if !ids.insert(id) || !usernames.insert(username.clone()) {
                continue;
            }
            let location = match dice.below(100) {
                0..15 => None,
                15..19 => Some(""),
                _ => Some(LOCATIONS[location_rank.sample(&mut dice)].0),
            };
            let lang = location
                .and_then(|location| LOCATIONS.iter().find(|(name, _)| *name == location))
                .and_then(|(_, lang)| *lang)
                .filter(|_| dice.chance(850))
                .unwrap_or_else(|| weighted_lang(&mut dice));
            let mut name = format!("{} {}", capitalise(adjective), capitalise(animal));
            if dice.chance(150) {
                name.push(' ');
                name.push_str(dice.pick::<&str>(&["✨", "🌻", "🎧", "📈", "🐾", "☕"]));
            }
            let followers = dice.heavy(6);
            users.push(User {
                id: id.to_string(),
                username,
                name,
                location,
                lang,
                followers,
                following: dice.below(5000),
                tweets: dice.heavy(5),
                verified: followers > 50_000 && dice.chance(300),
            });
        }
        let by_username = users
            .iter()
            .enumerate()
            .map(|(index, user)| (user.username.clone(), index))
            .collect();
        let count = options.count.max(1) as u64;
        Self {
            dice,
            activity: Zipf::new(users.len(), 8),
            users,
            by_username,
            now_ms: options.start.timestamp_millis(),
            mean_gap_ms: (options.span.num_milliseconds().max(1) as u64 / count).max(1),
            recent: VecDeque::with_capacity(RECENT_POSTS),
            malformed: 0,
        }
    }

    /// The next post, with a later `created_at` and a larger id than the last.
    fn post(&mut self) -> Message {
        let (message, earlier) = self.compose(true);
        if let Some(earlier) = earlier {
            if self.recent.len() == RECENT_POSTS {
                self.recent.pop_front();
            }
            self.recent.push_back(earlier);
        }
        message
    }

    /// A line that is not a post: cut-short JSON, an X error message, a post with
    /// no id, or a post with a count that is a string.
    fn malformed(&mut self) -> io::Result<String> {
        self.malformed += 1;
        Ok(match self.malformed % 4 {
            1 => {
                let (message, _) = self.compose(true);
                let line = serde_json::to_string(&message).map_err(io::Error::other)?;
                let mut cut = line.len() / 4 + self.dice.below(line.len() as u64 / 2) as usize;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line[..cut].to_owned()
            }
            2 => concat!(
                r#"{"errors":[{"title":"operational-disconnect","#,
                r#""disconnect_type":"UpstreamOperationalDisconnect","#,
                r#""detail":"This stream has been disconnected upstream for operational reasons.","#,
                r#""type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#
            )
            .to_owned(),
            3 => {
                let (message, _) = self.compose(false);
                serde_json::to_string(&message).map_err(io::Error::other)?
            }
            _ => {
                let (message, _) = self.compose(true);
                let likes = message.data.public_metrics.like_count;
                serde_json::to_string(&message)
                    .map_err(io::Error::other)?
                    .replacen(
                        &format!("\"like_count\":{likes}"),
                        &format!("\"like_count\":\"{likes}\""),
                        1,
                    )
            }
        })
    }

    fn next_id(&mut self) -> (String, String) {
        let gap = if self.dice.chance(120) {
            // A burst: many posts within a second or two.
            self.dice.below(self.mean_gap_ms / 8 + 1)
        } else {
            self.dice.below(self.mean_gap_ms * 2 + 1)
        };
        self.now_ms += gap as i64 + 1;
        let worker = self.dice.below(1024);
        let sequence = self.dice.below(4096);
        let id = (((self.now_ms - SNOWFLAKE_EPOCH_MS) as u64) << 22) | (worker << 12) | sequence;
        let created_at = Utc
            .timestamp_millis_opt(self.now_ms)
            .single()
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        (id.to_string(), created_at)
    }

    fn compose(&mut self, with_id: bool) -> (Message, Option<Earlier>) {
        let (id, created_at) = self.next_id();
        let author = self.activity.sample(&mut self.dice);
        let mut involved = vec![author];
        let kind = match self.dice.below(100) {
            _ if self.recent.is_empty() => Kind::Original,
            0..16 => Kind::Retweet,
            16..28 => Kind::Reply,
            28..34 => Kind::Quote,
            _ => Kind::Original,
        };
        let earlier = match kind {
            Kind::Original => None,
            _ => Some(self.dice.below(self.recent.len() as u64) as usize),
        };
        let lang;
        let topic;
        let mut text = String::new();
        let mut links: Vec<(String, String)> = Vec::new();
        let mut references = Vec::new();
        let mut in_reply_to_user_id = None;
        let mut conversation_id = id.clone();
        match (kind, earlier) {
            (Kind::Retweet, Some(index)) => {
                let earlier = &self.recent[index];
                lang = earlier.lang;
                topic = earlier.topic;
                let original = &self.users[earlier.author];
                text.push_str("RT @");
                text.push_str(&original.username);
                text.push_str(": ");
                text.push_str(&earlier.text);
                truncate_chars(&mut text, 280);
                references.push(Reference {
                    kind: "retweeted",
                    id: earlier.id.clone(),
                });
                involved.push(earlier.author);
            }
            (Kind::Reply, Some(index)) => {
                let (earlier_id, earlier_author, earlier_topic) = {
                    let earlier = &self.recent[index];
                    (earlier.id.clone(), earlier.author, earlier.topic)
                };
                lang = self.users[author].lang;
                topic = earlier_topic;
                text.push('@');
                text.push_str(&self.users[earlier_author].username);
                text.push(' ');
                self.body(&mut text, &mut links, lang, topic, 280);
                references.push(Reference {
                    kind: "replied_to",
                    id: earlier_id.clone(),
                });
                in_reply_to_user_id = Some(self.users[earlier_author].id.clone());
                conversation_id = earlier_id;
                involved.push(earlier_author);
            }
            (Kind::Quote, Some(index)) => {
                let (earlier_id, earlier_author, earlier_topic) = {
                    let earlier = &self.recent[index];
                    (earlier.id.clone(), earlier.author, earlier.topic)
                };
                lang = self.users[author].lang;
                topic = earlier_topic;
                self.body(&mut text, &mut links, lang, topic, 280 - LINK_LEN);
                let expanded = format!(
                    "https://x.com/{}/status/{earlier_id}",
                    self.users[earlier_author].username
                );
                self.link(&mut text, &mut links, expanded);
                references.push(Reference {
                    kind: "quoted",
                    id: earlier_id,
                });
                involved.push(earlier_author);
            }
            _ => {
                lang = self.users[author].lang;
                topic = *self.dice.pick(&Topic::ALL);
                self.body(&mut text, &mut links, lang, topic, 280);
            }
        }
        let entities = self.entities(&text, &links);
        let media = matches!(kind, Kind::Original | Kind::Reply) && self.dice.chance(110);
        let place = if self.dice.chance(80) {
            let (place_id, full_name, country_code) =
                if topic == Topic::Pandemic || topic == Topic::Concert || topic == Topic::Stocks {
                    *self.dice.pick(PLACES)
                } else {
                    PLACES[0]
                };
            Some(PlaceOut {
                full_name,
                id: place_id,
                country_code,
                place_type: "city",
            })
        } else {
            None
        };
        let base = match kind {
            Kind::Retweet => 0,
            _ => self.dice.heavy(4),
        };
        let public_metrics = PublicMetrics {
            retweet_count: base / 4 + self.dice.below(base / 8 + 1),
            reply_count: self.dice.below(base / 10 + 2),
            like_count: base,
            quote_count: self.dice.below(base / 40 + 1),
        };
        let (rule_id, rule_tag) = topic.rule();
        let mut users = Vec::new();
        for &index in &involved {
            let user = &self.users[index];
            if users.iter().any(|out: &UserOut| out.id == user.id) {
                continue;
            }
            users.push(UserOut {
                id: user.id.clone(),
                name: user.name.clone(),
                username: user.username.clone(),
                location: user.location,
                verified: user.verified,
                public_metrics: UserMetrics {
                    followers_count: user.followers,
                    following_count: user.following,
                    tweet_count: user.tweets,
                },
            });
        }
        let remembered = (kind != Kind::Retweet && with_id).then(|| Earlier {
            id: id.clone(),
            author,
            text: text.clone(),
            lang,
            topic,
        });
        let message = Message {
            data: Data {
                edit_history_tweet_ids: if with_id {
                    vec![id.clone()]
                } else {
                    Vec::new()
                },
                id: with_id.then_some(id),
                text,
                created_at,
                author_id: self.users[author].id.clone(),
                conversation_id,
                lang: lang.tag(),
                public_metrics,
                entities,
                referenced_tweets: references,
                in_reply_to_user_id,
                geo: place.as_ref().map(|place| Geo { place_id: place.id }),
                attachments: media.then(|| Attachments {
                    media_keys: vec![format!(
                        "3_{}",
                        self.dice.between(10u64.pow(18), 10u64.pow(19) - 1)
                    )],
                }),
            },
            includes: Includes {
                users,
                places: place.into_iter().collect(),
            },
            matching_rules: vec![Rule {
                id: rule_id,
                tag: rule_tag,
            }],
        };
        (message, remembered)
    }

    /// The text of an original post (or of a reply or quote after its prefix).
    /// `limit` is the most characters the text may reach (less than 280 when a
    /// link is still to come).
    fn body(
        &mut self,
        text: &mut String,
        links: &mut Vec<(String, String)>,
        lang: Lang,
        topic: Topic,
        limit: usize,
    ) {
        let template = *self.dice.pick(templates(lang, topic));
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let placeholder = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            match placeholder {
                "emoji" => text.push_str(self.dice.pick::<&str>(topic.emoji())),
                "city" => text.push_str(self.dice.pick::<&str>(CITY_TAGS)),
                "ticker" => text.push_str(self.dice.pick::<&str>(&TICKERS[..3])),
                "ticker2" => text.push_str(self.dice.pick::<&str>(&TICKERS[3..])),
                "n" => text.push_str(&self.dice.between(2, 89).to_string()),
                "pct" => {
                    let whole = self.dice.between(1, 14);
                    let tenth = self.dice.below(10);
                    text.push_str(&format!("{whole}.{tenth}"));
                }
                "temp" => text.push_str(&self.dice.between(14, 41).to_string()),
                other => text.push_str(other),
            }
        }
        text.push_str(rest);
        if self.dice.chance(60) {
            let other = self.activity.sample(&mut self.dice);
            let cc = format!(" cc @{}", self.users[other].username);
            push_within(text, &cc, limit);
        }
        if self.dice.chance(45) {
            let pii = self.pii();
            push_within(text, &pii, limit);
        }
        let with_link = self.dice.chance(200);
        let budget = if with_link { limit - LINK_LEN } else { limit };
        if self.dice.chance(60) {
            // A long post, close to the 280-character limit.
            let fillers = lang.fillers();
            let first = self.dice.below(fillers.len() as u64) as usize;
            for offset in 0..fillers.len() {
                let filler = fillers[(first + offset) % fillers.len()];
                push_within(text, &format!(" {filler}"), budget);
            }
        }
        if with_link && char_len(text) <= budget {
            let expanded = (*self.dice.pick(topic.links())).to_owned();
            self.link(text, links, expanded);
        }
    }

    fn pii(&mut self) -> String {
        let template = *self.dice.pick(PII);
        let user = &self.users[self.activity.sample(&mut self.dice)];
        let email = format!(
            "{}.{}@{}",
            user.username.trim_start_matches("synth_").replace('_', "."),
            self.dice.below(100),
            self.dice
                .pick(&["example.com", "example.org", "mail.example.net"]),
        );
        let mut filled = template.replace("{email}", &email);
        while filled.contains("{nn}") {
            let two = format!("{:02}", self.dice.below(100));
            filled = filled.replacen("{nn}", &two, 1);
        }
        filled = filled.replace("{d}", &self.dice.below(10).to_string());
        format!(" — {filled}")
    }

    fn link(&mut self, text: &mut String, links: &mut Vec<(String, String)>, expanded: String) {
        let short = format!("https://t.co/{}", self.dice.code(10));
        text.push(' ');
        text.push_str(&short);
        links.push((short, expanded));
    }

    /// Hashtags, mentions, cashtags and links found in `text`, with code-point
    /// offsets as X gives them.
    fn entities(&self, text: &str, links: &[(String, String)]) -> Option<Entities> {
        let chars: Vec<char> = text.chars().collect();
        let mut entities = Entities::default();
        let mut at = 0;
        while at < chars.len() {
            let sigil = chars[at];
            let starts_word = at == 0 || !(chars[at - 1].is_alphanumeric() || chars[at - 1] == '_');
            if !(starts_word && matches!(sigil, '#' | '@' | '$')) {
                at += 1;
                continue;
            }
            let mut end = at + 1;
            while end < chars.len() && is_tag_char(chars[end]) {
                end += 1;
            }
            let body: String = chars[at + 1..end].iter().collect();
            match sigil {
                '#' if body.chars().any(|c| !c.is_ascii_digit()) => {
                    entities.hashtags.push(TagOut {
                        start: at,
                        end,
                        tag: body,
                    });
                }
                '$' if body.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                    entities.cashtags.push(TagOut {
                        start: at,
                        end,
                        tag: body,
                    });
                }
                '@' => {
                    if let Some(&index) = self.by_username.get(&body) {
                        entities.mentions.push(MentionOut {
                            start: at,
                            end,
                            username: body,
                            id: self.users[index].id.clone(),
                        });
                    }
                }
                _ => {}
            }
            at = end.max(at + 1);
        }
        for (short, expanded) in links {
            if let Some(byte) = text.find(short.as_str()) {
                let start = text[..byte].chars().count();
                entities.urls.push(UrlOut {
                    start,
                    end: start + short.chars().count(),
                    url: short.clone(),
                    expanded_url: expanded.clone(),
                    display_url: display_url(expanded),
                });
            }
        }
        let empty = entities.hashtags.is_empty()
            && entities.mentions.is_empty()
            && entities.cashtags.is_empty()
            && entities.urls.is_empty();
        (!empty).then_some(entities)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Original,
    Retweet,
    Reply,
    Quote,
}

fn weighted_lang(dice: &mut Dice) -> Lang {
    let total: u64 = LANG_WEIGHTS.iter().map(|(_, weight)| weight).sum();
    let mut draw = dice.below(total);
    for (lang, weight) in LANG_WEIGHTS {
        if draw < weight {
            return lang;
        }
        draw -= weight;
    }
    Lang::ALL[0]
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Characters that continue a hashtag, mention or cashtag: anything but spaces and
/// ASCII punctuation other than `_`.
fn is_tag_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        !c.is_whitespace() && (c.is_alphanumeric() || is_combining_mark(c))
    }
}

/// Combining vowel signs and viramas of Indic scripts, which continue a word.
fn is_combining_mark(c: char) -> bool {
    matches!(u32::from(c), 0x0900..=0x0903 | 0x093A..=0x094F | 0x0951..=0x0957 | 0x0962..=0x0963)
        || matches!(u32::from(c), 0x064B..=0x065F | 0x3099..=0x309A)
}

fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// Appends `piece` unless the text would grow past `limit` characters.
fn push_within(text: &mut String, piece: &str, limit: usize) {
    if char_len(text) + char_len(piece) <= limit {
        text.push_str(piece);
    }
}

fn truncate_chars(text: &mut String, max: usize) {
    if let Some((byte, _)) = text.char_indices().nth(max) {
        let mut cut = text[..byte].to_owned();
        cut.pop();
        cut.push('…');
        *text = cut;
    }
}

fn display_url(expanded: &str) -> String {
    let bare = expanded
        .trim_start_matches("https://")
        .trim_start_matches("www.");
    if bare.chars().count() > 26 {
        let mut short: String = bare.chars().take(25).collect();
        short.push('…');
        short
    } else {
        bare.to_owned()
    }
}

#[derive(Serialize)]
struct Message {
    data: Data,
    includes: Includes,
    matching_rules: Vec<Rule>,
}

#[derive(Serialize)]
struct Data {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    edit_history_tweet_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    text: String,
    created_at: String,
    author_id: String,
    conversation_id: String,
    lang: &'static str,
    public_metrics: PublicMetrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    entities: Option<Entities>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    referenced_tweets: Vec<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_reply_to_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    geo: Option<Geo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attachments: Option<Attachments>,
}

#[derive(Serialize)]
struct PublicMetrics {
    retweet_count: u64,
    reply_count: u64,
    like_count: u64,
    quote_count: u64,
}

#[derive(Serialize, Default)]
struct Entities {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashtags: Vec<TagOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mentions: Vec<MentionOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cashtags: Vec<TagOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    urls: Vec<UrlOut>,
}

#[derive(Serialize)]
struct TagOut {
    start: usize,
    end: usize,
    tag: String,
}

#[derive(Serialize)]
struct MentionOut {
    start: usize,
    end: usize,
    username: String,
    id: String,
}

#[derive(Serialize)]
struct UrlOut {
    start: usize,
    end: usize,
    url: String,
    expanded_url: String,
    display_url: String,
}

#[derive(Serialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
}

#[derive(Serialize)]
struct Geo {
    place_id: &'static str,
}

#[derive(Serialize)]
struct Attachments {
    media_keys: Vec<String>,
}

#[derive(Serialize)]
struct Includes {
    users: Vec<UserOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    places: Vec<PlaceOut>,
}

#[derive(Serialize)]
struct UserOut {
    id: String,
    name: String,
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<&'static str>,
    verified: bool,
    public_metrics: UserMetrics,
}

#[derive(Serialize)]
struct UserMetrics {
    followers_count: u64,
    following_count: u64,
    tweet_count: u64,
}

#[derive(Serialize)]
struct PlaceOut {
    full_name: &'static str,
    id: &'static str,
    country_code: &'static str,
    place_type: &'static str,
}

#[derive(Serialize)]
struct Rule {
    id: &'static str,
    tag: &'static str,
}
