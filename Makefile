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
	@# The console's browser tests drive Debian's Chromium (Playwright never downloads one); the
	@# syslog export tests run a real rsyslogd, with its GnuTLS driver for syslog over TLS.
	@pkgs=""; command -v chromium >/dev/null || pkgs="chromium"; \
	{ command -v rsyslogd >/dev/null && dpkg -s rsyslog-gnutls >/dev/null 2>&1; } || \
		pkgs="$$pkgs rsyslog rsyslog-gnutls"; \
	[ -z "$$pkgs" ] || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; }

demo: install
	$(BIN)/mcp-notary demo

lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: install-test
	$(BIN)/python -m pytest
