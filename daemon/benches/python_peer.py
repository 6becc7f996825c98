#!/usr/bin/env python3
"""The Python pipeline tweetpipe replaces, as its users write it: for each line
of FILE (X API v2 JSON), `json.loads`, score the text with `vaderSentiment`,
replace the author's handle with an HMAC-SHA256 pseudonym and e-mail addresses
in the text with a marker, and insert the row into SQLite, 500 rows a
transaction, `synchronous=FULL`, duplicates skipped by post id. Malformed lines
are counted and skipped. Prints one JSON object:
{"posts_per_sec", "cpu_seconds_per_million", "peak_rss_kib", "rows", "version"};
exits 3 when vaderSentiment is missing."""

import hashlib
import hmac
import importlib.metadata
import json
import os
import re
import resource
import sqlite3
import sys
import tempfile
import time

try:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
except ImportError:
    print("the vaderSentiment package is not installed", file=sys.stderr)
    sys.exit(3)

KEY = b"bench-key-0123456789abcdef"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
BATCH = 500


def label(compound):
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


def run(path, db_path):
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS posts (id TEXT PRIMARY KEY, created_at TEXT, "
        "text TEXT, lang TEXT, user_id TEXT, user_name TEXT, user_location TEXT, "
        "hashtags TEXT, sentiment_compound REAL, sentiment_label TEXT)"
    )
    insert = "INSERT OR IGNORE INTO posts VALUES (?,?,?,?,?,?,?,?,?,?)"
    analyzer = SentimentIntensityAnalyzer()
    rows, pending, malformed = 0, [], 0  # rows: posts handed to SQLite
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
                post = message["data"]
            except (ValueError, KeyError, TypeError):
                malformed += 1
                continue
            users = {u.get("id"): u for u in message.get("includes", {}).get("users", [])}
            author = users.get(post.get("author_id"), {})
            text = EMAIL.sub("[email]", post.get("text", ""))
            scores = analyzer.polarity_scores(post.get("text", ""))
            handle = author.get("username", "")
            pseudonym = "u_" + hmac.new(KEY, handle.encode(), hashlib.sha256).hexdigest()[:16]
            hashtags = [tag.get("tag") for tag in post.get("entities", {}).get("hashtags", [])]
            pending.append((
                post.get("id"), post.get("created_at"), text, post.get("lang"),
                post.get("author_id"), pseudonym, author.get("location"),
                json.dumps(hashtags), scores["compound"], label(scores["compound"]),
            ))
            if len(pending) == BATCH:
                db.execute("BEGIN")
                db.executemany(insert, pending)
                db.execute("COMMIT")
                rows += len(pending)
                pending.clear()
    if pending:
        db.execute("BEGIN")
        db.executemany(insert, pending)
        db.execute("COMMIT")
        rows += len(pending)
    written = db.total_changes
    db.close()
    return written, rows + malformed


def main():
    path = sys.argv[1]
    with tempfile.TemporaryDirectory() as work:
        wall, cpu = time.perf_counter(), time.process_time()
        rows, read = run(path, os.path.join(work, "posts.db"))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({
        "posts_per_sec": read / wall,
        "cpu_seconds_per_million": cpu / read * 1e6,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rows": rows,
        "version": importlib.metadata.version("vaderSentiment"),
    }))


if __name__ == "__main__":
    main()
