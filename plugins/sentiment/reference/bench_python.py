#!/usr/bin/env python3
"""Posts per second of the reference VADER on the texts of the sample posts.

The same texts the plugin's benchmark scores; one process, one core:
`python3 bench_python.py [path/to/posts.jsonl]`.
"""

import json
import os
import sys
import time

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "..", "config", "samples", "posts.jsonl")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    texts = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                texts.append(json.loads(line)["data"]["text"])
            except (ValueError, KeyError, TypeError):
                continue
    analyzer = SentimentIntensityAnalyzer()
    rounds = 3
    start = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            analyzer.polarity_scores(text)
    elapsed = time.perf_counter() - start
    scored = rounds * len(texts)
    print("python vaderSentiment: %d posts in %.2f s = %.0f posts/s" % (scored, elapsed, scored / elapsed))


if __name__ == "__main__":
    main()
