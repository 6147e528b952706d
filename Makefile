# SQIN — make help lists the targets.
GO        ?= go
BIN       := bin/sqin
SQIN_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export SQIN_TEST_POSTGRES

.PHONY: help build demo test test-go test-fuzz test-interop bench lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## build bin/sqin
	$(GO) build -o $(BIN) ./cmd/sqin

demo: ## run the demo: OP on :8080, demo service on :8081, SQLite in ./sqin-data
	$(GO) run ./cmd/sqin serve --demo

test: test-go test-fuzz test-interop ## every suite: Go (SQLite + PostgreSQL), fuzz, interop clients

test-go: ## Go tests, race detector on
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

test-fuzz: ## short runs of every fuzz target
	@./scripts/fuzz.sh 100000x

test-interop: build ## third-party clients against the running server
	@./interop/run.sh

bench: build ## load, audit-log, registry-import and proofing benchmarks on SQLite and PostgreSQL (BENCH_FLAGS="--audit-events 10000000 --registry-records 9000000 --proofing-records 9000000" scales up; docs/PERFORMANCE.md)
	$(GO) run ./cmd/sqin-bench --bin $(BIN) $(BENCH_FLAGS)

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...

clean: ## remove build output and demo data
	rm -rf bin sqin-data
