# tweetpipe: the two commands are `make run` and `make test`.

CARGO       ?= cargo
WASM_TARGET := wasm32-wasip2
CONFIG      ?= config/tweetpipe.toml
BIN         := target/release/tweetpipe

.PHONY: all build plugins run test test-only lint setup bench sample clean

all: build plugins

## Build the daemon (release).
build:
	$(CARGO) build --release --locked -p tweetpipe

## Build the plugins we ship and the examples for wasm32-wasip2.
plugins: setup
	$(CARGO) build --locked --profile plugin --target $(WASM_TARGET) --workspace --exclude tweetpipe

## Build everything and run the main job on the embedded default.
run: build plugins
	$(BIN) run --config $(CONFIG)
	@echo
	@echo "Rows are in out/tweetpipe.db (try: sqlite3 out/tweetpipe.db 'select count(*) from posts'),"
	@echo "dead letters in out/dead-letters.jsonl."

## Install what the tests need, then run every test.
test: setup plugins lint
	$(CARGO) test --locked -p tweetpipe

## Formatting and lints, warnings are errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked -p tweetpipe --all-targets -- -D warnings

## Toolchain pieces the build and tests need.
setup:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## Benchmarks (release builds; numbers depend on the machine).
bench: setup plugins
	$(CARGO) bench --locked -p tweetpipe

## Regenerate the committed sample posts (deterministic).
sample:
	$(CARGO) run --release --locked -p tweetpipe -- sample --count 3000 --seed 42 --out config/samples/posts.jsonl

clean:
	$(CARGO) clean
	rm -rf out
