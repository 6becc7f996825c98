# Helpers shared by the package checks (sourced, not run).

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 \
            || fail "the tool '$tool' is missing (run 'make deb-tools', or apt-get install the package that has it)"
    done
}

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
}
