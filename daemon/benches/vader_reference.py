#!/usr/bin/env python3
"""The Python reference for the sentiment plugin: posts per second of the
`vaderSentiment` package scoring the texts in FILE (one JSON string per line),
on whatever core the caller pins it to. Prints one JSON object:
{"posts_per_sec", "cpu_seconds_per_million", "peak_rss_kib", "version"};
exits 3 when the package is missing."""

import importlib.metadata
import json
import resource
import statistics
import sys
import time

try:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
except ImportError:
    print("the vaderSentiment package is not installed", file=sys.stderr)
    sys.exit(3)

ROUNDS = 5

texts = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
analyzer = SentimentIntensityAnalyzer()
analyzer.polarity_scores("warm up")
rates, cpu_per_post = [], []
for _ in range(ROUNDS):
    wall, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        analyzer.polarity_scores(text)
    rates.append(len(texts) / (time.perf_counter() - wall))
    cpu_per_post.append((time.process_time() - cpu) / len(texts))
print(json.dumps({
    "posts_per_sec": statistics.median(rates),
    "cpu_seconds_per_million": statistics.median(cpu_per_post) * 1e6,
    "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "version": importlib.metadata.version("vaderSentiment"),
}))
