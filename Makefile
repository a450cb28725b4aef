# Sluice. `make demo` and `make test` set up everything they need on a fresh
# Debian machine (ClickHouse via scripts/clickhouse.sh, Go modules via go).

GO       ?= go
BIN      := bin/sluice
# make demo DURATION=30s stops by itself; without it, Ctrl-C ends the demo.
DURATION ?=
RATE     ?= 20000

.PHONY: all build test soak demo clickhouse clickhouse-stop peers vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sluice

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
