#!/usr/bin/env python3
"""Derives packaging/tweetpipe.toml (the deb's /etc/tweetpipe/tweetpipe.toml) from
config/tweetpipe.toml: absolute paths into the package, a looping paced replay
and one shipped plugin. Rerun after changing the reference config:
    python3 packaging/derive-config.py
"""
import os
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
src=open('config/tweetpipe.toml').read()
def rep(old,new):
    global src
    assert src.count(old)==1, old
    src=src.replace(old,new)
rep('''# tweetpipe configuration reference.
#
# `make run` uses this file as it is: it replays the sample posts shipped in
# config/samples/ through the embedded broker into a local SQLite database,
# with no cloud account. Relative paths resolve against this file's directory.
''','''# /etc/tweetpipe/tweetpipe.toml: the tweetpipe service's configuration.
#
# As installed it runs the embedded default, with no cloud account: it replays
# the bundled sample posts (20 a second, in a loop) through the in-process queue
# and the filter, sentiment and pii-scrub plugins into /var/lib/tweetpipe/tweetpipe.db. Watch it
# with `systemctl status tweetpipe` (a throughput line) and
# `journalctl -u tweetpipe -f`. Replace [source.replay] with [source.x] to read X,
# and [sink.sqlite] with [sink.bigquery] to load BigQuery.
#
# After editing: `sudo systemctl reload tweetpipe` applies plugin changes in
# place (and logs what changed, or why the file was refused); other sections
# need `sudo systemctl restart tweetpipe`. Keep secrets in
# credentials (LoadCredential=, see `systemctl cat tweetpipe`), not in this file.
''')
rep('''with broker.kind = "embedded" only. Default true; this sample config reads
# its sample whole on every `make run`, to show the de-duplication.
resume = false
''','''with broker.kind = "embedded" only. A restart of the service continues the
# current pass through the sample.
resume = true
''')
rep('''path = "samples/posts.jsonl"
# Posts per second; leave out (or 0) to replay as fast as the pipeline takes them.
# rate = 50.0
# Start again from the first line after the last one (not for stdin).
loop = false
''','''path = "/usr/share/tweetpipe/samples/posts.jsonl"
# Posts per second; leave out (or 0) to replay as fast as the pipeline takes them.
rate = 20.0
# Start again from the first line after the last one (not for stdin). Replayed
# posts keep their ids, so after the first pass they count as duplicates.
loop = true
''')
for plugin in ('filter', 'sentiment', 'pii_scrub'):
    rep(f'path = "../target/wasm32-wasip2/plugin/{plugin}.wasm"',
        f'path = "/usr/lib/tweetpipe/plugins/{plugin}.wasm"')
rep('''# The chain `make run` runs: the three plugins tweetpipe ships, built by
# `make plugins` (installed from the package in /usr/lib/tweetpipe/plugins/).''','''# The three plugins tweetpipe ships, from /usr/lib/tweetpipe/plugins/; put
# your own in /var/lib/tweetpipe/plugins/.''')
rep('path = "../out/tweetpipe.db"','path = "/var/lib/tweetpipe/tweetpipe.db"')
rep('# dir = "../out/jsonl"','# dir = "/var/lib/tweetpipe/jsonl"')
rep('path = "../out/dead-letters.jsonl"','path = "/var/lib/tweetpipe/dead-letters.jsonl"')
rep('path = "../out/spool"','path = "/var/lib/tweetpipe/spool"')
open('packaging/tweetpipe.toml','w').write(src)
