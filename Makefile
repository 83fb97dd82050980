# edgewamp — see README.md. Two commands set everything up on a fresh machine:
#   make run    build and start the router on the embedded default config
#   make test   vet, depcheck, staticcheck, gofmt and the whole test suite with -race
#               (loop's tests once more with io_uring off, gateway's without the event loop's HTTP lane)
SHELL := /bin/bash
GO ?= go
BIN := bin/edgewamp
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 30s
# Short minimisation so that a 30 s run mostly fuzzes (Go minimises each new
# input for up to a minute by default).
FUZZFLAGS ?= -fuzzminimizetime 2s
# make release VERSION=x.y.z: static, stripped, reproducible binaries, tarballs
# and .deb packages for ARCHES, with SHA256SUMS, in DIST (deploy/release.sh).
DIST ?= dist
ARCHES ?= amd64 arm64 armv7
# Packages holding fuzz targets; `make fuzz` runs every Fuzz* in each.
FUZZPKGS ?= ./proto ./loop ./route ./fuzz

.PHONY: build run test vet depcheck lint staticcheck fmt bench bench-e2e fuzz soak release clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/edgewamp

run: build
	./$(BIN) run $(ARGS)

vet:
	$(GO) vet ./...

depcheck:
	./.ci/depcheck

fmt:
	gofmt -w $$(git ls-files '*.go')

# staticcheck, pinned; `go run pkg@version` builds it once into the build
# cache (about a minute on 2 cores) and does not touch go.mod.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: depcheck vet staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

staticcheck:
	$(STATICCHECK) ./...

# The loop package's tests run twice: on the send path the system gives
# (io_uring where available) and with io_uring off (write(2)), so that
# every socket test passes on both (issue 15).
test: lint
	$(GO) test -race -timeout 15m ./...
	# The loop's tests once more on write(2), with every loop parked (waiting
	# in Go's netpoller, as a mesh node's loops do: loop/park.go).
	EDGEWAMP_TEST_IO_URING=off EDGEWAMP_TEST_PARK=on $(GO) test -race -timeout 10m ./loop
	# The gateway once more without the event loop's HTTP lane (net/http alone).
	EDGEWAMP_TEST_GATEWAY_LANE=off $(GO) test -race -timeout 10m ./gateway
	# 5,000 TLS sessions at once (the race detector's crypto is too slow for
	# that many: under it the same test opens 1,000), and the memory bound
	# on RSS (under the race detector RSS counts its shadow memory too).
	$(GO) test -count=1 -run '^(TestTLSStorm|TestSocketInboundBudgetMemory)$$' ./loop

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./proto ./route ./loop

bench-e2e: build
	./bench/run-e2e.sh

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZFLAGS="$(FUZZFLAGS)" FUZZPKGS="$(FUZZPKGS)" ./fuzz/run.sh

release:
	@if [[ "$(origin VERSION)" != command* && "$(origin VERSION)" != environment* ]]; then \
		echo "usage: make release VERSION=x.y.z [ARCHES=\"$(ARCHES)\"] [DIST=$(DIST)]" >&2; exit 2; fi
	GO=$(GO) DIST=$(DIST) ARCHES="$(ARCHES)" ./deploy/release.sh $(VERSION)

# The hostile-peer lifecycle stress test against the built router, then
# the mesh's churn test, each for DURATION (make test runs them for 10 s
# and 8 s): make soak DURATION=10m
DURATION ?= 10m
soak:
	EDGEWAMP_SOAK=$(DURATION) $(GO) test -count=1 -timeout 0 -v -run '^TestHostileLifecycle$$' ./fuzz
	EDGE_CHURN=$(DURATION) $(GO) test -race -count=1 -timeout 0 -v -run '^TestMeshChurnLeavesNothingBehind$$' ./edge

clean:
	rm -rf bin dist
