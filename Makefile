# The two Quick start commands. Both install everything they need into .venv (and the npm test
# fixtures into tests/node/node_modules), so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	@# The console's browser tests drive Debian's Chromium (Playwright never downloads one).
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: install
	$(BIN)/mcp-notary demo

lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: install-test
	$(BIN)/python -m pytest
