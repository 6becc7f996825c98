#!/bin/sh
# systemd-analyze verify on the packaged unit, with the package unpacked as the
# root (so ExecStart= exists) and the host's units for the targets it names.
# systemd-analyze exits 0 on unknown keys and bad values: any output is a failure.
set -eu
. "$(dirname "$0")/lib.sh"
need dpkg-deb systemd-analyze
deb=$1

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
unit=usr/lib/systemd/system/tweetpipe.service
[ -f "$root/$unit" ] || fail "the package has no /$unit"
for dir in /lib/systemd/system /usr/lib/systemd/system; do
    [ -d "$dir" ] && mkdir -p "$root/usr/lib/systemd/system" && cp -an "$dir/." "$root/usr/lib/systemd/system/"
done
mkdir -p "$root/bin"
cp /bin/kill "$root/bin/kill"

out=$(MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" "$root/$unit" 2>&1) \
    || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify failed"; }
[ -z "$out" ] || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify printed warnings"; }

# The settings the package promises.
grep -qx 'Type=notify' "$root/$unit" || fail "the unit is not Type=notify"
grep -q '^MemoryDenyWriteExecute' "$root/$unit" && fail "MemoryDenyWriteExecute= breaks wasmtime's JIT"
echo "systemd-analyze verify: clean"
