# tailplane: make example (build and run on the bundled example), make test.
GO ?= go
SHELL := bash
BIN := bin/tailplane
EXAMPLE ?= examples/basic

.PHONY: build example test lint-examples conformance fuzz bench loadtest clean

build:
	$(GO) build -o $(BIN) ./cmd/tailplane

# Build, lint the bundled example and serve it (Ctrl-C stops the server).
# Join a node with the example's demo key, see README.md.
LISTEN ?= 127.0.0.1:8080
STATE_DIR ?= $(CURDIR)/.state/example
example: build
	./$(BIN) lint $(EXAMPLE)
	./$(BIN) plan $(EXAMPLE) --state-dir $(STATE_DIR)
	./$(BIN) serve --config $(EXAMPLE) --state-dir $(STATE_DIR) --listen $(LISTEN)

lint-examples: build
	@for d in examples/*/; do echo "lint $$d"; ./$(BIN) lint $$d || exit 1; done

test: lint-examples conformance
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

# Tailscale conformance: prints "conformance: N/M cases match" and one line
# per category; fails below the floor in policy/testdata/conformance-floor.txt.
conformance:
	@set -o pipefail; $(GO) test -count=1 -run '^TestConformance$$' -v ./policy | grep -E '^(conformance|--- FAIL|FAIL|ok)' 

# A short pass over every fuzz target in the module (FUZZTIME each); the
# seed corpora under each package's testdata/fuzz also run in `make test`.
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The load generator against a self-started `tailplane serve` on loopback;
# see docs/performance.md. e.g. make loadtest LOADTEST_FLAGS='--nodes 2000 --json'
LOADTEST_FLAGS ?= --nodes 1000 --policy full
loadtest: build
	$(GO) build -o bin/tailplane-loadtest ./cmd/tailplane-loadtest
	./bin/tailplane-loadtest --tailplane-bin $(BIN) $(LOADTEST_FLAGS)

clean:
	rm -rf bin .state
