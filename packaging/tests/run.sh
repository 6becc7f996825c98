#!/bin/sh
# Runs every package check on one .deb: `make test-deb` calls this.
#   packaging/tests/run.sh target/debian/tweetpipe_0.1.0-1_amd64.deb
set -eu

deb=${1:?usage: $0 PATH/TO/tweetpipe_*.deb}
here=$(cd "$(dirname "$0")" && pwd)
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")

for check in contents lintian unit install; do
    started=$(date +%s)
    echo "== $check: $deb"
    "$here/$check.sh" "$deb"
    echo "== $check: ok ($(( $(date +%s) - started )) s)"
done
