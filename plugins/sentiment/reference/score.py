#!/usr/bin/env python3
"""Scores corpus.jsonl with the reference VADER and writes expected.jsonl.

Needs `pip install vaderSentiment==3.3.2`. Run from this folder after
`make_corpus.py`; the plugin's reference test reads expected.jsonl.
"""

import json
import os

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    analyzer = SentimentIntensityAnalyzer()
    count = 0
    with open(os.path.join(HERE, "corpus.jsonl"), encoding="utf-8") as corpus, \
            open(os.path.join(HERE, "expected.jsonl"), "w", encoding="utf-8") as out:
        for line in corpus:
            text = json.loads(line)["text"]
            scores = analyzer.polarity_scores(text)
            row = {"text": text, "compound": scores["compound"], "pos": scores["pos"],
                   "neu": scores["neu"], "neg": scores["neg"]}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    print("scored %d sentences" % count)


if __name__ == "__main__":
    main()
