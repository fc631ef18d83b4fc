# tailplane: make example (build and run on the bundled example), make test.
GO ?= go
BIN := bin/tailplane
EXAMPLE ?= examples/basic

.PHONY: build example test lint-examples fuzz bench clean

build:
	$(GO) build -o $(BIN) ./cmd/tailplane

# Build, lint the bundled example and show what applying it would change.
example: build
	./$(BIN) lint $(EXAMPLE)
	./$(BIN) plan $(EXAMPLE) --state-dir $(or $(STATE_DIR),$(CURDIR)/.state/example)

lint-examples: build
	@for d in examples/*/; do echo "lint $$d"; ./$(BIN) lint $$d || exit 1; done

test: lint-examples
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

# Short fuzzing pass over every fuzz target (seeds live in testdata/fuzz).
fuzz:
	$(GO) test ./schema -run '^$$' -fuzz FuzzLoad -fuzztime 30s
	$(GO) test ./reconcile -run '^$$' -fuzz '^FuzzDiffValues$$' -fuzztime 30s
	$(GO) test ./reconcile -run '^$$' -fuzz '^FuzzLoadObject$$' -fuzztime 30s
	$(GO) test ./reconcile -run '^$$' -fuzz '^FuzzParseDuration$$' -fuzztime 10s
	$(GO) test ./gitsync -run '^$$' -fuzz '^FuzzParseSignature$$' -fuzztime 10s
	$(GO) test ./gitsync -run '^$$' -fuzz '^FuzzParseAllowedSigners$$' -fuzztime 20s
	$(GO) test ./gitsync -run '^$$' -fuzz '^FuzzParseSSHSignature$$' -fuzztime 20s
	$(GO) test ./gitsync -run '^$$' -fuzz '^FuzzTreeFS$$' -fuzztime 20s

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin .state
