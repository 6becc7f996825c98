# tweetpipe: the two commands are `make run` and `make test`.

CARGO       ?= cargo
WASM_TARGET := wasm32-wasip2
CONFIG      ?= config/tweetpipe.toml
# Cargo's target directory: CARGO_TARGET_DIR when set, as cargo itself does.
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),target)
BIN         := $(TARGET_DIR)/release/tweetpipe

.PHONY: all build plugins plugin-tools poly-plugins plugin-link run test test-only test-tools lint setup bench bench-reference sample clean deb deb-tools test-deb miri

all: build plugins

## Build the daemon (release).
build:
	$(CARGO) build --release --locked -p tweetpipe

## Build the plugins we ship and the examples for wasm32-wasip2; the Python
## and JavaScript examples too when their toolchains are installed (plugin-tools).
plugins: setup
	$(CARGO) build --locked --profile plugin --target $(WASM_TARGET) --workspace --exclude tweetpipe
	@if [ -x $(COMPONENTIZE_PY) ] && [ -x $(COMPONENTIZE_JS) ]; then \
		$(MAKE) --no-print-directory poly-plugins; \
	else \
		echo "note: the Python and JavaScript examples are not built (make plugin-tools installs componentize-py and componentize-js)"; \
	fi

## The Python and JavaScript plugin toolchains, pinned, under $(TOOLS_DIR):
## componentize-py from PyPI in a virtualenv, componentize-js from npm by
## plugin-sdk/js/package-lock.json.
TOOLS_DIR               := $(TARGET_DIR)/tools
COMPONENTIZE_PY_VERSION := 0.25.1
COMPONENTIZE_PY         := $(TOOLS_DIR)/py/bin/componentize-py
COMPONENTIZE_JS         := $(TOOLS_DIR)/js/node_modules/.bin/componentize-js
plugin-tools: $(COMPONENTIZE_PY) $(COMPONENTIZE_JS)

$(COMPONENTIZE_PY):
	@python3 -m venv --help >/dev/null 2>&1 || { \
		echo "installing python3-venv (for componentize-py)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv python3-pip; \
	}
	python3 -m venv $(TOOLS_DIR)/py
	$(TOOLS_DIR)/py/bin/pip install --quiet --disable-pip-version-check componentize-py==$(COMPONENTIZE_PY_VERSION)

$(COMPONENTIZE_JS): plugin-sdk/js/package.json plugin-sdk/js/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		echo "installing nodejs and npm (for componentize-js)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm; \
	}
	mkdir -p $(TOOLS_DIR)/js
	cp plugin-sdk/js/package.json plugin-sdk/js/package-lock.json $(TOOLS_DIR)/js/
	cd $(TOOLS_DIR)/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## The Python and JavaScript examples: plugins/examples/NAME/{python,js}/ built
## into NAME_py.wasm and NAME_js.wasm beside the Rust plugins; and the Python
## test fixture.
POLY_EXAMPLES := keyword-filter only-english-with-links
PLUGIN_OUT    := $(TARGET_DIR)/$(WASM_TARGET)/plugin
WIT           := plugin-sdk/wit/plugin.wit
PY_SDK        := plugin-sdk/python/tweetpipe_plugin/__init__.py
JS_SDK        := plugin-sdk/js/tweetpipe_plugin.js
# $(1): the folder of app.py, $(2): the component's name.
define python_plugin
$(PLUGIN_OUT)/$(2).wasm: $(1)/app.py $(PY_SDK) $(WIT) | $(COMPONENTIZE_PY)
	@mkdir -p $$(@D)
	$(COMPONENTIZE_PY) -d plugin-sdk/wit -w plugin componentize -p $(1) -p plugin-sdk/python app -o $$@
endef
# $(1): the folder of app.js, $(2): the component's name. componentize-js
# resolves `./tweetpipe_plugin.js` beside app.js, so both are staged together.
define js_plugin
$(PLUGIN_OUT)/$(2).wasm: $(1)/app.js $(JS_SDK) $(WIT) | $(COMPONENTIZE_JS)
	@mkdir -p $$(@D) $(TOOLS_DIR)/js-build/$(2)
	cp $(1)/app.js $(JS_SDK) $(TOOLS_DIR)/js-build/$(2)/
	$(COMPONENTIZE_JS) $(TOOLS_DIR)/js-build/$(2)/app.js --wit plugin-sdk/wit -n plugin -d http -d fetch-event -o $$@
endef
POLY_PLUGINS := hostile_python
$(eval $(call python_plugin,daemon/tests/fixtures/python/hostile,hostile_python))
$(foreach example,$(POLY_EXAMPLES),\
  $(eval $(call python_plugin,plugins/examples/$(example)/python,$(subst -,_,$(example))_py))\
  $(eval $(call js_plugin,plugins/examples/$(example)/js,$(subst -,_,$(example))_js))\
  $(eval POLY_PLUGINS += $(subst -,_,$(example))_py $(subst -,_,$(example))_js))
poly-plugins: $(foreach plugin,$(POLY_PLUGINS),$(PLUGIN_OUT)/$(plugin).wasm)

## Build everything and run the main job on the embedded default.
run: build plugins plugin-link
	$(BIN) run --config $(CONFIG)
	@echo
	@echo "Rows are in out/tweetpipe.db (try: sqlite3 out/tweetpipe.db 'select count(*) from posts'),"
	@echo "dead letters in out/dead-letters.jsonl."

## Install what the tests need, then run every test.
test: setup plugin-tools plugins lint test-tools
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

## The one unsafe code in the workspace, the plugin SDK's small-block allocator,
## under Miri (nightly): its tests then fail on any out-of-bounds access, use
## after free, double free or lost block. Installs nightly's miri when missing.
MIRI_TOOLCHAIN ?= nightly
miri:
	@rustup +$(MIRI_TOOLCHAIN) component list --installed 2>/dev/null | grep -q '^miri' \
	  || rustup toolchain install $(MIRI_TOOLCHAIN) --profile minimal --component miri,rust-src
	$(CARGO) +$(MIRI_TOOLCHAIN) miri test -p tweetpipe-plugin --lib small_blocks

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
bench: setup plugin-tools plugins build bench-reference
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
