# Tessera — the two commands: `make run` and `make test`.
GO      ?= go
BIN     := bin/tessera
DATA    ?= data

.PHONY: build run test test-short bench lint deps

build:
	$(GO) build -o $(BIN) ./cmd/tessera

# Installs PostgreSQL's binaries when the machine has none (Debian/Ubuntu, as root or with sudo),
# then starts everything: private PostgreSQL under $(DATA)/pg, embedded Temporal, and on
# the first start the built-in modules with demo data.
run: deps build
	./$(BIN) serve --demo --data-dir $(DATA)

deps:
	@bash .ci/install-deps

test: deps
	$(GO) test -count=1 -timeout 60m ./...

bench: build
	$(GO) run ./bench

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
