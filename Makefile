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
# and .deb packages for ARCHES, with SHA256SUMS (signed with SIGN_KEY, an SSH
# key, when set), in DIST (deploy/release.sh).
DIST ?= dist
ARCHES ?= amd64 arm64 armv7
# Packages holding fuzz targets; `make fuzz` runs every Fuzz* in each.
FUZZPKGS ?= ./proto ./loop ./route ./edge ./gateway ./fuzz

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

# make test's first command runs every package's tests with -race, as many
# packages at once as TEST_P. Most of the suite waits (timeouts, restarts,
# other processes) rather than computes: at 2 packages at once on 2 CPUs
# the CPUs were busy about 55 % of the time. The packages whose tests take
# longest go first, in TEST_ORDER (./... adds each other package once; go
# test starts them in the order given): in alphabetical order three of the
# longest (loop, gateway, route) came last. loop and gateway run twice,
# the second time in their other configuration (.ci/test-variants, the
# -exec wrapper), inside the same scheduling rather than after it.
# `./.ci/run` from a fresh clone on a 2-CPU host (bench/history.md, "make
# test's wall time"): 12 min 35 s before, 8 min 11 s after. TEST_P=2 on a
# machine that is busy with other work. -timeout bounds each package's
# binary, as a guard against a hang, not a budget: deploy builds releases
# for three architectures and took 407 s with one CPU busy with other work,
# and more than 15 minutes with both, so it is 30m.
TEST_P ?= 3
TEST_ORDER ?= ./deploy ./loop ./cmd/edgewamp ./gateway ./route ./edge ./fuzz ./oauth ./...

test: lint
	$(GO) test -race -p $(TEST_P) -timeout 30m -exec $(CURDIR)/.ci/test-variants $(TEST_ORDER)
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
		echo "usage: make release VERSION=x.y.z [ARCHES=\"$(ARCHES)\"] [DIST=$(DIST)] [SIGN_KEY=ssh-key]" >&2; exit 2; fi
	GO=$(GO) DIST=$(DIST) ARCHES="$(ARCHES)" SIGN_KEY="$(SIGN_KEY)" ./deploy/release.sh $(VERSION)

# The hostile-peer lifecycle stress test against the built router, then
# the mesh's churn test, each for DURATION (make test runs them for 10 s
# and 8 s): make soak DURATION=10m
DURATION ?= 10m
soak:
	EDGEWAMP_SOAK=$(DURATION) $(GO) test -count=1 -timeout 0 -v -run '^TestHostileLifecycle$$' ./fuzz
	EDGE_CHURN=$(DURATION) $(GO) test -race -count=1 -timeout 0 -v -run '^TestMeshChurnLeavesNothingBehind$$' ./edge

clean:
	rm -rf bin dist
