# Herald: `make run` serves the gateway and the demo page; `make test` installs what is
# missing, builds once and runs every test.
SWIFT ?= swift
PYTEST = .venv/bin/python -m pytest
DEBUG_BIN = .build/debug/herald

.PHONY: run build release deps test unit e2e clean

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
