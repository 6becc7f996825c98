#!/bin/sh
# Install, run, upgrade and purge the package in a throwaway Debian chroot
# (debootstrap --variant=minbase; needs root and Debian's mirror). The chroot's
# base is cached as a tarball in target/deb-test/ so later runs skip debootstrap.
set -eu
. "$(dirname "$0")/lib.sh"
need debootstrap dpkg-deb chroot
[ "$(id -u)" = 0 ] || fail "the install test needs root (debootstrap, chroot)"
deb=$1

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
cache_dir=$(cd "$(dirname "$0")/../.." && pwd)/target/deb-test
base="$cache_dir/$SUITE-minbase.tar"
mkdir -p "$cache_dir"

root=$(mktemp -d /tmp/tweetpipe-chroot.XXXXXX)
cleanup() {
    umount "$root/proc" 2>/dev/null || true
    rm -rf "$root"
}
trap cleanup EXIT

if [ -f "$base" ]; then
    tar -C "$root" -xf "$base"
else
    echo "debootstrap $SUITE (minbase) from $MIRROR, about a minute"
    debootstrap --variant=minbase --include=adduser,procps "$SUITE" "$root" "$MIRROR" \
        >"$cache_dir/debootstrap.log" 2>&1 \
        || { tail -n 30 "$cache_dir/debootstrap.log" >&2; fail "debootstrap failed (log: $cache_dir/debootstrap.log)"; }
    tar -C "$root" -cf "$base.tmp" . && mv "$base.tmp" "$base"
fi
# mktemp -d makes a 0700 directory; as the chroot's / it would lock out every
# user but root (the tweetpipe user could not even load libc).
chmod 0755 "$root"
mount -t proc proc "$root/proc" 2>/dev/null || echo "note: /proc not mounted in the chroot"

in_root() { chroot "$root" "$@"; }
as_daemon() { chroot "$root" setpriv --reuid=tweetpipe --regid=tweetpipe --init-groups "$@"; }
mode_of() { in_root stat -c '%U:%G %a' "$1"; }
CONFIG=/etc/tweetpipe/tweetpipe.toml

# A second version of the package: the same files with a higher version
# (and, with "changed", a different shipped config), to test upgrades.
repack() {
    version=$1 change=$2 out=$3
    work=$(mktemp -d)
    dpkg-deb -R "$deb" "$work/pkg"
    sed -i "s/^Version: .*/Version: $version/" "$work/pkg/DEBIAN/control"
    if [ "$change" = changed ]; then
        sed -i 's/^level = "info"/level = "debug"/' "$work/pkg$CONFIG"
    fi
    dpkg-deb --root-owner-group -b "$work/pkg" "$out" >/dev/null
    rm -rf "$work"
}

echo "-- install"
cp "$deb" "$root/tmp/tweetpipe.deb"
in_root dpkg -i /tmp/tweetpipe.deb

passwd=$(in_root getent passwd tweetpipe) || fail "no tweetpipe user after install"
uid=$(echo "$passwd" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "tweetpipe is not a system user (uid $uid)"
assert_eq "home of tweetpipe" /var/lib/tweetpipe "$(echo "$passwd" | cut -d: -f6)"
assert_eq "shell of tweetpipe" /usr/sbin/nologin "$(echo "$passwd" | cut -d: -f7)"
in_root getent group tweetpipe >/dev/null || fail "no tweetpipe group after install"

assert_eq "$CONFIG" "root:tweetpipe 640" "$(mode_of $CONFIG)"
assert_eq /var/lib/tweetpipe "tweetpipe:tweetpipe 750" "$(mode_of /var/lib/tweetpipe)"
assert_eq /var/lib/tweetpipe/plugins "root:root 755" "$(mode_of /var/lib/tweetpipe/plugins)"
assert_eq /usr/bin/tweetpipe "root:root 755" "$(mode_of /usr/bin/tweetpipe)"
assert_eq /usr/lib/tweetpipe/plugins/drop_retweets.wasm "root:root 644" \
    "$(mode_of /usr/lib/tweetpipe/plugins/drop_retweets.wasm)"
in_root test -f /lib/systemd/system/tweetpipe.service || fail "the unit is not installed"

echo "-- check-config and a short run as the tweetpipe user"
# What CacheDirectory= gives the service.
in_root install -d -o tweetpipe -g tweetpipe -m 0750 /var/cache/tweetpipe
as_daemon env CACHE_DIRECTORY=/var/cache/tweetpipe tweetpipe check-config --config $CONFIG \
    || fail "tweetpipe check-config fails on the shipped config as the tweetpipe user"
status=0
run_out=$(as_daemon env CACHE_DIRECTORY=/var/cache/tweetpipe \
    timeout --preserve-status -s TERM 6 tweetpipe run --config $CONFIG 2>&1) || status=$?
[ "$status" = 0 ] || { printf '%s\n' "$run_out" >&2; fail "tweetpipe run on the shipped config exited $status after SIGTERM"; }
printf '%s\n' "$run_out" | grep -q 'shutdown requested' \
    || { printf '%s\n' "$run_out" >&2; fail "the run did not drain on SIGTERM"; }
[ -s "$root/var/lib/tweetpipe/tweetpipe.db" ] || fail "the run wrote no /var/lib/tweetpipe/tweetpipe.db"
in_root find /var/lib/tweetpipe/tweetpipe.db -user tweetpipe | grep -q . \
    || fail "the database is not owned by tweetpipe"

echo "-- upgrade keeps an edited config"
printf '\n# edited by the admin\n' >>"$root$CONFIG"
edited=$(cat "$root$CONFIG")
repack 0.1.0-2 same "$root/tmp/tweetpipe-2.deb"
in_root dpkg -i /tmp/tweetpipe-2.deb
assert_eq "installed version" 0.1.0-2 "$(in_root dpkg-query -W -f '${Version}' tweetpipe)"
[ "$(cat "$root$CONFIG")" = "$edited" ] || fail "the upgrade replaced the edited $CONFIG"
assert_eq "$CONFIG after upgrade" "root:tweetpipe 640" "$(mode_of $CONFIG)"

echo "-- upgrade with a changed shipped config keeps the edited one (--force-confold)"
repack 0.1.0-3 changed "$root/tmp/tweetpipe-3.deb"
in_root dpkg -i --force-confdef --force-confold /tmp/tweetpipe-3.deb
[ "$(cat "$root$CONFIG")" = "$edited" ] || fail "the upgrade replaced the edited $CONFIG"
in_root test -f "$CONFIG.dpkg-dist" || fail "the new shipped config was not kept as $CONFIG.dpkg-dist"
assert_eq "$CONFIG after upgrade" "root:tweetpipe 640" "$(mode_of $CONFIG)"

echo "-- purge"
in_root dpkg --purge tweetpipe
for gone in /etc/tweetpipe /var/lib/tweetpipe /var/cache/tweetpipe /usr/bin/tweetpipe \
    /usr/lib/tweetpipe /lib/systemd/system/tweetpipe.service; do
    in_root test ! -e "$gone" || fail "$gone is still there after purge"
done
if in_root dpkg-statoverride --list $CONFIG >/dev/null; then
    fail "the stat override of $CONFIG survived the purge"
fi
echo "installed, ran, upgraded twice keeping the edited config, purged clean"
