# tweetpipe: the two commands are `make run` and `make test`.

CARGO       ?= cargo
WASM_TARGET := wasm32-wasip2
CONFIG      ?= config/tweetpipe.toml
# Cargo's target directory: CARGO_TARGET_DIR when set, as cargo itself does.
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),target)
BIN         := $(TARGET_DIR)/release/tweetpipe

.PHONY: all build plugins plugin-link run test test-only test-tools lint setup bench bench-reference sample clean deb deb-tools test-deb

all: build plugins

## Build the daemon (release).
build:
	$(CARGO) build --release --locked -p tweetpipe

## Build the plugins we ship and the examples for wasm32-wasip2.
plugins: setup
	$(CARGO) build --locked --profile plugin --target $(WASM_TARGET) --workspace --exclude tweetpipe

## Build everything and run the main job on the embedded default.
run: build plugins plugin-link
	$(BIN) run --config $(CONFIG)
	@echo
	@echo "Rows are in out/tweetpipe.db (try: sqlite3 out/tweetpipe.db 'select count(*) from posts'),"
	@echo "dead letters in out/dead-letters.jsonl."

## Install what the tests need, then run every test.
test: setup plugins lint test-tools
	$(CARGO) test --locked --workspace

## Tools the tests call, installed with apt-get when missing: promtool (Debian's
## prometheus package) checks and unit-tests packaging/prometheus/; chromium
## opens the dashboard headless (daemon/tests/dashboard_browser.rs).
test-tools:
	@command -v promtool >/dev/null 2>&1 || { \
		echo "installing prometheus (for promtool)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
		|| { echo "error: promtool is missing and the prometheus package could not be installed; install it (apt-get install prometheus)"; exit 1; }; \
	}
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (for the dashboard's browser test)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		|| { echo "error: chromium is missing and could not be installed; install it (apt-get install chromium)"; exit 1; }; \
	}

## The Debian package: $(TARGET_DIR)/debian/tweetpipe_<version>-1_<arch>.deb (cargo-deb).
deb: plugins plugin-link
	@command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked
	$(CARGO) deb --locked --strip -p tweetpipe

## The sample config and the package's assets name the built plugins under
## target/; with another CARGO_TARGET_DIR, that folder is linked to its plugins.
plugin-link:
	@if [ "$(abspath $(TARGET_DIR))" != "$(abspath target)" ] && [ ! -e target/wasm32-wasip2/plugin ]; then \
		mkdir -p target/wasm32-wasip2 && ln -s "$(abspath $(TARGET_DIR))/wasm32-wasip2/plugin" target/wasm32-wasip2/plugin; \
	fi

## Package checks: contents and modes, lintian, systemd-analyze verify, and an
## install/upgrade/purge in a throwaway Debian chroot (debootstrap; needs root).
test-deb: deb deb-tools
	packaging/tests/run.sh $(TARGET_DIR)/debian/$$(cd $(TARGET_DIR)/debian && ls -t tweetpipe_*.deb | head -n 1)

## Tools the package checks need, installed with apt-get when missing.
DEB_TOOLS := lintian debootstrap systemd fakeroot
deb-tools:
	@missing=$$(for pkg in $(DEB_TOOLS); do dpkg-query -W -f='$${Status}\n' $$pkg 2>/dev/null | grep -q 'install ok installed' || echo $$pkg; done); \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

## Formatting and lints, warnings are errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked -p tweetpipe --all-targets -- -D warnings

## Toolchain pieces the build and tests need.
setup:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## Benchmarks: every `cargo bench` target of the daemon pinned to one core, then
## benches/report.rs, which runs `tweetpipe run` end to end on a generated replay
## of BENCH_POSTS posts (BENCH_RUNS runs per sink) and Python's VADER, and prints
## the table of posts/s, CPU-s per million posts and peak RSS beside the targets.
BENCH_CPU    ?= 0
BENCH_POSTS  ?= 1000000
BENCH_RUNS   ?= 3
BENCH_DIR    := $(TARGET_DIR)/bench
BENCH_PIN    := $(if $(shell command -v taskset),taskset -c $(BENCH_CPU))
CRITERION_BENCHES := $(filter-out report,$(basename $(notdir $(wildcard daemon/benches/*.rs))))
bench: setup plugins build bench-reference
	@mkdir -p $(BENCH_DIR) && touch $(BENCH_DIR)/started
	$(CARGO) bench --locked -p tweetpipe --no-run
	$(BENCH_PIN) $(CARGO) bench --locked -p tweetpipe $(addprefix --bench ,$(CRITERION_BENCHES))
	TWEETPIPE_BENCH_CPU=$(if $(BENCH_PIN),$(BENCH_CPU)) TWEETPIPE_BENCH_POSTS=$(BENCH_POSTS) \
	TWEETPIPE_BENCH_RUNS=$(BENCH_RUNS) $(CARGO) bench --locked -p tweetpipe --bench report

## The Python references the sentiment and end-to-end figures are compared
## with (vaderSentiment, for benches/vader_reference.py and benches/python_peer.py):
## installed with pip when missing; without it the table says it is missing.
bench-reference:
	@python3 -c 'import vaderSentiment' 2>/dev/null \
	  || python3 -m pip install --quiet vaderSentiment 2>/dev/null \
	  || echo "note: python3 with vaderSentiment is not available; the table leaves out the Python references"

## Regenerate the committed sample posts (deterministic).
sample:
	$(CARGO) run --release --locked -p tweetpipe -- sample --count 3000 --seed 42 --out config/samples/posts.jsonl

clean:
	$(CARGO) clean
	rm -rf out
