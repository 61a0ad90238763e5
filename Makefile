# Herald: `make run` serves the gateway and the demo page; `make test` installs what is
# missing, builds once and runs every test.
SWIFT ?= swift
PYTEST = .venv/bin/python -m pytest
DEBUG_BIN = .build/debug/herald

.PHONY: run build release deps test unit e2e clean bench

run: release
	./scripts/run.sh

release:
	$(SWIFT) build -c release --product herald

build:
	$(SWIFT) build --build-tests

deps:
	./scripts/deps.sh

test: deps build unit e2e

unit:
	$(SWIFT) test --skip-build

e2e:
	HERALD_BIN=$(DEBUG_BIN) $(PYTEST) -q Tests/e2e

clean:
	rm -rf .build

# Retake the README's screenshot (docs/screenshot.png) with the headless-Chromium test.
.PHONY: screenshot
screenshot: deps build
	HERALD_UPDATE_SCREENSHOT=1 HERALD_BIN=$(DEBUG_BIN) $(PYTEST) -q Tests/e2e/test_demo_page.py -k screenshot

bench:
	./scripts/bench/run.sh

# Fuzzing: libFuzzer + ASan targets in the separate package Fuzz/ (own scratch path
# Fuzz/.build-fuzz), each run FUZZ_SECONDS (default 60) from its seed corpus Fuzz/corpus/<target>;
# crashes land in Fuzz/crashes/<target>/. `fuzz-ci` is the short pass for CI (10 s each).
.PHONY: fuzz fuzz-ci soak
fuzz:
	./scripts/fuzz.sh

fuzz-ci:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-10} ./scripts/fuzz.sh

# Soak: a private redis-server and Herald (HERALD_BIN, default the debug build), SOAK_SECONDS
# (default 180) of publishing with subscribers joining and leaving; fails on fd or RSS growth.
soak: deps
	@[ -n "$$HERALD_BIN" ] || [ -x $(DEBUG_BIN) ] || $(SWIFT) build --product herald
	HERALD_BIN=$${HERALD_BIN:-$(DEBUG_BIN)} .venv/bin/python scripts/soak.py

# Chaos: a Redis primary and replica, three sentinels and two Heralds (HERALD_BIN, default the
# debug build) on loopback, clients of every kind, and faults on a schedule for CHAOS_SECONDS
# (default 120): primary killed (failed over, or restarted when Herald has no sentinel support),
# primary paused past the link timeout, a Herald killed and restarted, clients cut mid-frame.
# Prints and writes (.build/chaos/results.json, results.md) a table per kind; exits 1 on any
# loss it should not see. `chaos-short` is the ~30 s run with one fault of each kind that
# `make test` runs through Tests/e2e/test_chaos.py.
# `chaos-cluster`: the same against a 3-master Redis Cluster with a replica each (a master
# killed and its replica promoted, a master paused, a live slot migrated; sharded subscribers
# too); results in .build/chaos/results-cluster.json and .md.
.PHONY: chaos chaos-short chaos-cluster
chaos: deps
	@[ -n "$$HERALD_BIN" ] || [ -x $(DEBUG_BIN) ] || $(SWIFT) build --product herald
	HERALD_BIN=$${HERALD_BIN:-$(DEBUG_BIN)} CHAOS_SECONDS=$${CHAOS_SECONDS:-120} .venv/bin/python scripts/chaos/chaos.py

chaos-cluster: deps
	@[ -n "$$HERALD_BIN" ] || [ -x $(DEBUG_BIN) ] || $(SWIFT) build --product herald
	HERALD_BIN=$${HERALD_BIN:-$(DEBUG_BIN)} CHAOS_CLUSTER=1 CHAOS_SECONDS=$${CHAOS_SECONDS:-120} .venv/bin/python scripts/chaos/chaos.py

chaos-short: deps
	@[ -n "$$HERALD_BIN" ] || [ -x $(DEBUG_BIN) ] || $(SWIFT) build --product herald
	HERALD_BIN=$${HERALD_BIN:-$(DEBUG_BIN)} CHAOS_SHORT=1 .venv/bin/python scripts/chaos/chaos.py

# Container image without a Docker engine: release build as the Dockerfile does it, a Debian
# bookworm minbase root filesystem (debootstrap, cached in .build-container/), the runtime
# stage's RUN/COPY/ENV/USER replayed in it, Herald run there against a host redis-server.
# Needs root and the Debian mirror. About 20 s warm; a cold run adds the release build and
# debootstrap (a few minutes).
.PHONY: container-check lint format
container-check: deps
	./scripts/container-check.sh

# Static checks: swift format (configured in .swift-format) over every Swift source, hadolint on
# the Dockerfile, shell syntax of scripts/. `make format` rewrites the Swift sources in place.
lint: deps
	$(SWIFT) format lint --strict -r Sources Tests Fuzz/Sources
	.venv/bin/hadolint Dockerfile
	bash -n scripts/*.sh

format:
	$(SWIFT) format format -i -r Sources Tests Fuzz/Sources
