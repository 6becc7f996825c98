#!/bin/sh
# lintian: no errors and no warnings; anything accepted is overridden with a reason
# in packaging/lintian-overrides.
set -eu
. "$(dirname "$0")/lib.sh"
need lintian
deb=$1

# lintian refuses to run as root without this.
out=$(lintian --allow-root --fail-on error,warning --display-level '>=warning' "$deb" 2>&1) || {
    printf '%s\n' "$out" >&2
    fail "lintian reported errors or warnings"
}
[ -z "$out" ] || printf '%s\n' "$out"
echo "lintian: no errors or warnings"
