# The two commands of the README: `make dev` runs the service, `make test` checks everything.
# Both need only Python >= 3.11, make and pip: `make install` bootstraps uv from PyPI when it is
# missing and creates .venv/ from uv.lock.

PYTHON ?= python3
UV_BOOTSTRAP := .tools/bin/uv
UV := $(shell command -v uv 2>/dev/null || echo $(UV_BOOTSTRAP))
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install dev test lint clean

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

test: lint
	.venv/bin/pytest

clean:
	rm -rf .venv .tools .pytest_cache .ruff_cache
