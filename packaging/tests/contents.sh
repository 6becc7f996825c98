#!/bin/sh
# dpkg-deb -c / -I: the files, their modes and owners, the conffiles, the control fields.
set -eu
. "$(dirname "$0")/lib.sh"
need dpkg-deb
deb=$1

listing=$(dpkg-deb -c "$deb")
# entry MODE OWNER PATH: one line of `dpkg-deb -c` (mode string, owner/group, ./path).
entry() {
    # dpkg-deb -c shows numeric owners for cargo-deb packages (0/0 is root/root).
    line=$(printf '%s\n' "$listing" | awk -v path="./$3" '$6 == path { print $1, $2 }')
    assert_eq "mode and owner of /$3" "$1 $2" "$line"
}
entry -rwxr-xr-x 0/0 usr/bin/tweetpipe
entry -rw-r----- 0/0 etc/tweetpipe/tweetpipe.toml
entry -rw-r--r-- 0/0 usr/lib/systemd/system/tweetpipe.service
entry -rw-r--r-- 0/0 usr/share/man/man1/tweetpipe.1.gz
entry -rw-r--r-- 0/0 usr/share/doc/tweetpipe/changelog.Debian.gz
entry -rw-r--r-- 0/0 usr/share/doc/tweetpipe/copyright
entry -rw-r--r-- 0/0 usr/share/tweetpipe/samples/posts.jsonl
entry -rw-r--r-- 0/0 usr/share/tweetpipe/grafana/tweetpipe-dashboard.json
entry -rw-r--r-- 0/0 usr/share/tweetpipe/prometheus/tweetpipe-alerts.yml
entry -rw-r--r-- 0/0 usr/share/tweetpipe/prometheus/tweetpipe-alerts.test.yml
entry -rw-r--r-- 0/0 var/lib/tweetpipe/plugins/README
# What `tweetpipe plugin new --lang python|js` builds against.
for file in wit/plugin.wit python/tweetpipe_plugin/__init__.py js/tweetpipe_plugin.js js/package.json README.md; do
    entry -rw-r--r-- 0/0 "usr/share/tweetpipe/sdk/$file"
done
# ... and `--lang rust`: the SDK crate, its macros and the workspace they inherit from.
for file in Cargo.toml tweetpipe-plugin/Cargo.toml tweetpipe-plugin/README.md tweetpipe-plugin/src/lib.rs tweetpipe-plugin/wit/plugin.wit \
    tweetpipe-plugin/macros/Cargo.toml tweetpipe-plugin/macros/src/lib.rs; do
    entry -rw-r--r-- 0/0 "usr/share/tweetpipe/sdk/rust/$file"
done
for source in "$(dirname "$0")"/../../plugin-sdk/src/*.rs; do
    entry -rw-r--r-- 0/0 "usr/share/tweetpipe/sdk/rust/tweetpipe-plugin/src/$(basename "$source")"
done
entry -rw-r--r-- 0/0 usr/share/lintian/overrides/tweetpipe
for plugin in filter sentiment pii_scrub drop_retweets keep_lang keyword_filter noop only_english_with_links; do
    entry -rw-r--r-- 0/0 "usr/lib/tweetpipe/plugins/$plugin.wasm"
done
# Test fixtures (hostile plugins) must never be shipped.
if printf '%s\n' "$listing" | grep -q 'hostile'; then
    fail "a test fixture plugin is in the package: $(printf '%s\n' "$listing" | grep hostile)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -e "$deb" "$tmp/control"
assert_eq conffiles "/etc/tweetpipe/tweetpipe.toml" "$(cat "$tmp/control/conffiles")"
for script in postinst postrm; do
    [ -x "$tmp/control/$script" ] || fail "$script is missing or not executable"
    sh -n "$tmp/control/$script" || fail "$script is not valid sh"
done
grep -q 'adduser --system --group' "$tmp/control/postinst" || fail "postinst does not create the system user"
grep -q 'dpkg-statoverride --update --add root tweetpipe 0640' "$tmp/control/postinst" \
    || fail "postinst does not give the config to group tweetpipe"
# cargo-deb expanded #DEBHELPER#: unit registration, and a restart on upgrade.
grep -q '#DEBHELPER#' "$tmp/control/postinst" && fail "postinst still has an unexpanded #DEBHELPER#"
grep -q 'deb-systemd-helper update-state tweetpipe.service' "$tmp/control/postinst" \
    || fail "postinst does not register tweetpipe.service"
grep -q 'deb-systemd-invoke try-restart tweetpipe.service' "$tmp/control/postinst" \
    || fail "postinst does not restart a running service after an upgrade"

info=$(dpkg-deb -I "$deb")
field() { printf '%s\n' "$info" | sed -n "s/^ $1: //p"; }
assert_eq Package tweetpipe "$(field Package)"
assert_eq Section net "$(field Section)"
case "$(field Depends)" in
    *adduser*procps* | *procps*adduser*) ;;
    *) fail "Depends lacks adduser and procps: $(field Depends)" ;;
esac
case "$(field Depends)" in
    *libc6*) ;;
    *) fail "Depends lacks the shared-library dependencies (libc6): $(field Depends)" ;;
esac
echo "contents, modes, conffiles and control fields are as expected"
