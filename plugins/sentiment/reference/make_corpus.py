#!/usr/bin/env python3
"""Writes corpus.txt: the sentences the plugin is checked on against VADER.

Deterministic (fixed seed, no third-party packages): run it from this folder
with `python3 make_corpus.py`, then `python3 score.py` to refresh the expected
scores. Covers plain valence, boosters and dampeners, negation one to three
tokens back, "but", ALL CAPS, `!` and `?`, emoji and emoticons, VADER's idioms
and special cases, "least", "no", tweet-like texts, and the distinct texts of
the sample posts.
"""

import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE_POSTS = os.path.join(HERE, "..", "..", "..", "config", "samples", "posts.jsonl")

rng = random.Random(20261121)


def lexicon_words():
    path = os.path.join(HERE, "..", "data", "vader_lexicon.txt")
    with open(path, encoding="utf-8") as lines:
        return [line.split("\t")[0] for line in lines if line.strip()]


LEXICON_WORDS = lexicon_words()

SUBJECTS = ["The movie", "This phone", "The service", "My day", "The new update", "Her speech",
            "The concert", "Our team", "The food", "This app", "The weather", "The game",
            "His answer", "The vaccine rollout", "The ending", "Traffic", "The hotel"]
POSITIVE = ["good", "great", "amazing", "wonderful", "nice", "excellent", "happy", "fun",
            "beautiful", "brilliant", "lovely", "helpful", "fantastic", "perfect", "cool", "best"]
NEGATIVE = ["bad", "terrible", "awful", "horrible", "sad", "boring", "ugly", "annoying",
            "disappointing", "poor", "worst", "stupid", "broken", "painful", "angry", "hate"]
NEUTRAL = ["blue", "long", "on time", "in the box", "ready", "here", "open", "available",
           "at the station", "scheduled"]
BOOSTERS = ["very", "really", "extremely", "so", "totally", "incredibly", "absolutely",
            "kinda", "slightly", "somewhat", "barely", "hardly", "sort of", "kind of",
            "just enough", "quite", "most", "less", "fucking", "hella", "uber"]
NEGATIONS = ["not", "isn't", "never", "wasn't", "don't", "can't", "no", "without", "nothing",
             "nor", "cannot", "ain't", "won't", "neither", "rarely", "seldom", "despite"]
FILLERS = ["at all", "really", "that", "the", "even", "a", "ever", "this", "so"]
EMOJI = ["😀", "😂", "😍", "😭", "😡", "👍", "👎", "❤", "💔", "🔥", "🎉", "😷", "🙄", "😢",
         "🤔", "💯", "😊", "😱", "🙏", "💩", "✨", "😎", "🤮", "🥳", "😴", "🤬", "♥", "☹"]
EMOTICONS = [":)", ":(", ":D", ":-)", ":/", "<3", ";)", ":P", "xD", ":'(", "D:", "=)", ":|"]
IDIOMS = ["the shit", "the bomb", "bad ass", "badass", "kiss of death", "yeah right",
          "to die for", "beating heart", "bus stop", "cut the mustard", "under the weather",
          "upper hand", "break a leg", "in the red", "on the ball"]
HASHTAGS = ["#fail", "#blessed", "#COVID19", "#happy", "#Monday", "#win", "#sad", "#love"]
MENTIONS = ["@support", "@jane_doe", "@CityCouncil", "@bestbuy"]
URLS = ["https://t.co/abc123", "http://example.com/x", "https://t.co/Zz9"]

HANDWRITTEN = [
    "VADER is smart, handsome, and funny.",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today only kinda sux! But I'll get by, lol",
    "Sentiment analysis has never been good.",
    "Sentiment analysis has never been this good!",
    "Most automated sentiment analysis tools are shit.",
    "With VADER, sentiment analysis is the shit!",
    "Other sentiment analysis tools can be quite bad.",
    "On the other hand, VADER is quite bad ass",
    "VADER is such a badass!",
    "Without a doubt, excellent idea.",
    "Without a doubt, an excellent idea.",
    "Roger Dodger is one of the most compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "Not such a badass after all.",
    "It was one of the worst movies I've seen, despite good reviews.",
    "Unbelievably bad acting!!",
    "VERY poor production.",
    "VERY BAD movie!",
    "no problem at all",
    "there is no good or bad answer",
    "no love nor hope here",
    "I have no complaints",
    "I'm not sure this is the least bit funny",
    "At the very least it works",
    "good good good but bad bad bad",
    "bad but good but bad",
    "but",
    "!!!",
    "???",
    "",
    "   ",
    ":)",
    "😀",
    "😀😀😀",
    "hi😀there",
    "I love it!!!!!!!!",
    "Is this good???",
    "Is this good?",
    "WHAT A DAY",
    "what a GREAT day",
    "GREAT",
    "Café au lait is délicieux and the crème brûlée was superb",
    "ÜBER GOOD stuff, Ärger is NOT fun",
    "İstanbul was LOVELY",
    "ΣΟΦΙΑ is happy",
    "mañana will be better, or worse",
    "naïve but sweet",
    "this\tis\ttab\tseparated and good",
    "trailing spaces are fine   ",
    "\u00a0non-breaking\u00a0spaces are great\u00a0",
    "weird—dashes—and “quotes” are ‘fine’",
    "ok... fine... whatever...",
    "(great) [awful] {nice} <bad>",
    "'good' \"bad\" `meh`",
    "lol lmao rofl smh wtf",
    "can't stand it, fed up, screwed up",
    "it's not bad, it's not good, it's just not",
    "I don't hate it",
    "I didn't not like it",
    "Never so happy",
    "never this bad",
    "so good so bad so what",
    "this good, this bad",
]


def pick(items):
    return rng.choice(items)


def shout(text):
    return text.upper()


def maybe_caps(word):
    return shout(word) if rng.random() < 0.25 else word


def punctuation():
    return pick(["", "", ".", "!", "!!", "!!!", "!!!!!", "?", "??", "???", "?!", "?!?!", "...", "!?"])


def clause(valence=None):
    kind = valence or pick(["pos", "neg", "neu"])
    words = {"pos": POSITIVE, "neg": NEGATIVE, "neu": NEUTRAL}[kind]
    return "%s is %s" % (pick(SUBJECTS).lower(), maybe_caps(pick(words)))


def generators():
    def plain():
        return "%s is %s%s" % (pick(SUBJECTS), maybe_caps(pick(POSITIVE + NEGATIVE + NEUTRAL)), punctuation())

    def boosted():
        return "%s is %s %s%s" % (pick(SUBJECTS), maybe_caps(pick(BOOSTERS)),
                                  maybe_caps(pick(POSITIVE + NEGATIVE)), punctuation())

    def double_boosted():
        return "%s was %s %s %s" % (pick(SUBJECTS), pick(BOOSTERS), pick(BOOSTERS), pick(POSITIVE + NEGATIVE))

    def negated():
        gap = rng.randint(0, 2)
        between = " ".join(pick(FILLERS) for _ in range(gap))
        parts = [pick(SUBJECTS), "is", pick(NEGATIONS)]
        if between:
            parts.append(between)
        parts.append(maybe_caps(pick(POSITIVE + NEGATIVE)))
        return " ".join(parts) + punctuation()

    def negated_boosted():
        return "%s %s %s %s" % (pick(SUBJECTS), pick(NEGATIONS), pick(BOOSTERS), pick(POSITIVE + NEGATIVE))

    def but():
        return "%s, %s %s%s" % (clause(), pick(["but", "BUT", "But"]), clause(), punctuation())

    def caps_sentence():
        return shout("%s is %s %s" % (pick(SUBJECTS), pick(BOOSTERS), pick(POSITIVE + NEGATIVE))) + punctuation()

    def emoji():
        count = rng.randint(1, 3)
        glyphs = [pick(EMOJI) for _ in range(count)]
        joiner = pick(["", " "])
        where = rng.random()
        base = clause()
        if where < 0.33:
            return joiner.join(glyphs) + " " + base
        if where < 0.66:
            return base + pick(["", " "]) + joiner.join(glyphs) + punctuation()
        return base.replace(" is ", " is " + glyphs[0] + " ", 1)

    def emoticon():
        return "%s %s %s" % (clause(), pick(EMOTICONS), pick(["", pick(EMOTICONS)])) + punctuation()

    def idiom():
        text = pick([
            "%s is %s" % (pick(SUBJECTS), pick(IDIOMS)),
            "this %s is %s" % (pick(["party", "song", "cake"]), pick(IDIOMS)),
            "I feel %s today, %s" % (pick(IDIOMS), pick(POSITIVE + NEGATIVE)),
            "%s, %s %s" % (pick(IDIOMS), pick(BOOSTERS), pick(POSITIVE + NEGATIVE)),
            "waiting at the %s so %s" % (pick(IDIOMS), pick(POSITIVE + NEGATIVE)),
        ])
        return text + punctuation()

    def least():
        return "%s %s %s %s" % (pick(SUBJECTS), pick(["is the least", "is at least", "at the very least",
                                                      "least", "not the least bit"]),
                                pick(POSITIVE + NEGATIVE), pick(["", "overall", "imo"]))

    def no_rules():
        return pick([
            "no %s %s" % (pick(POSITIVE + NEGATIVE), pick(SUBJECTS).lower()),
            "%s has no %s or %s" % (pick(SUBJECTS), pick(["help", "fun", "love", "problem"]),
                                    pick(POSITIVE + NEGATIVE)),
            "no %s nor %s" % (pick(POSITIVE), pick(NEGATIVE)),
            "no, %s" % clause(),
            "%s no" % clause(),
        ])

    def never_so():
        return "%s %s %s %s" % (pick(["never", "Never", "without", "without a"]), pick(["so", "this", "doubt", "a"]),
                                pick(["so", "this", "really", "doubt"]), pick(POSITIVE + NEGATIVE))

    def tweet():
        parts = [clause()]
        if rng.random() < 0.5:
            parts.insert(0, pick(MENTIONS))
        if rng.random() < 0.6:
            parts.append(pick(HASHTAGS))
        if rng.random() < 0.4:
            parts.append(pick(URLS))
        if rng.random() < 0.3:
            parts.append(pick(EMOJI))
        if rng.random() < 0.3:
            parts.insert(0, "RT")
        return " ".join(parts) + punctuation()

    def repeated():
        word = pick(POSITIVE + NEGATIVE)
        return " ".join([word] * rng.randint(2, 4)) + " but " + " ".join([pick(POSITIVE + NEGATIVE)] * 2)

    def soup():
        # Random lexicon words mixed with modifiers, negations, "but", caps and
        # punctuation: sequences no template would write.
        tokens = []
        for _ in range(rng.randint(3, 12)):
            roll = rng.random()
            if roll < 0.35:
                token = pick(LEXICON_WORDS)
            elif roll < 0.5:
                token = pick(BOOSTERS)
            elif roll < 0.62:
                token = pick(NEGATIONS)
            elif roll < 0.7:
                token = pick(["but", "least", "at", "very", "no", "or", "nor", "kind", "of", "so", "this"])
            elif roll < 0.78:
                token = pick(EMOJI + EMOTICONS)
            else:
                token = pick(FILLERS + ["the", "a", "I", "we", "it"])
            if rng.random() < 0.15:
                token = token.upper()
            if rng.random() < 0.15:
                token = pick(["(", "\"", "'", "*"]) + token + pick([")", ",", ".", "!", "?", "'", "..."])
            tokens.append(token)
        return " ".join(tokens) + punctuation()

    def long_mix():
        return " ".join(clause() + punctuation() for _ in range(rng.randint(2, 4)))

    return [plain, boosted, double_boosted, negated, negated_boosted, but, caps_sentence, emoji,
            emoticon, idiom, least, no_rules, never_so, tweet, repeated, long_mix, soup, soup, soup]


def sample_texts(limit):
    texts = []
    seen = set()
    with open(SAMPLE_POSTS, encoding="utf-8") as lines:
        for line in lines:
            try:
                text = json.loads(line)["data"]["text"]
            except (ValueError, KeyError, TypeError):
                continue
            if text not in seen:
                seen.add(text)
                texts.append(text)
    return texts[:limit]


def main():
    corpus = list(HANDWRITTEN)
    makers = generators()
    seen = set(corpus)
    while len(corpus) < 1700:
        text = pick(makers)()
        if text not in seen:
            seen.add(text)
            corpus.append(text)
    for text in sample_texts(400):
        if text not in seen:
            seen.add(text)
            corpus.append(text)
    with open(os.path.join(HERE, "corpus.jsonl"), "w", encoding="utf-8") as out:
        for text in corpus:
            out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    print("wrote %d sentences" % len(corpus))


if __name__ == "__main__":
    main()
