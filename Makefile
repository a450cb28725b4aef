# Sluice. `make demo` and `make test` set up everything they need on a fresh
# Debian machine (ClickHouse via scripts/clickhouse.sh, Go modules via go).

GO       ?= go
BIN      := bin/sluice
# make demo DURATION=30s stops by itself; without it, Ctrl-C ends the demo.
DURATION ?=
RATE     ?= 20000

# What `sluice version` and sluice_build_info report: stamped into the
# binary at link time. Outside a git checkout (or without git) the version
# reads "dev" and the revision "unknown".
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO  := github.com/sluicehq/sluice/internal/buildinfo
LDFLAGS    := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).revision=$(REVISION) -X $(BUILDINFO).date=$(BUILD_DATE)

.PHONY: all build generate test soak demo clickhouse clickhouse-stop peers vet clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sluice

# sluice.example.yaml and the tables of docs/configuration.md, from the
# commands' flags (cmd/sluice tests fail when they are out of date).
generate:
	$(GO) generate ./cmd/sluice

clickhouse:
	scripts/clickhouse.sh start

peers:
	scripts/peers.sh

clickhouse-stop:
	scripts/clickhouse.sh stop

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

# The whole suite, against the real ClickHouse, embedded Kafka broker and
# embedded NATS, with the race detector.
test: clickhouse peers vet build
	SLUICE_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 24m ./...

# The kill tests, longer: SLUICE_CHAOS_KILLS kills per test.
SLUICE_CHAOS_KILLS ?= 30
soak: clickhouse build
	SLUICE_BIN=$(CURDIR)/$(BIN) SLUICE_CHAOS_KILLS=$(SLUICE_CHAOS_KILLS) $(GO) test -count=1 -timeout 60m -run 'TestChaos' -v ./e2e/

demo: clickhouse build
	DURATION=$(DURATION) RATE=$(RATE) scripts/demo.sh

clean:
	rm -rf bin .local/demo
