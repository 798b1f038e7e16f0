# Weir: `make demo` and `make test` are the two commands a new user needs.
# Both create .venv and install the project into it first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-test
BENCH_INSTALLED := $(VENV)/.installed-bench

.PHONY: demo test lint typecheck unit e2e bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Weir needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(BENCH_INSTALLED): pyproject.toml $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@

demo: $(INSTALLED)
	$(BIN)/weir sandbox

test: $(INSTALLED) lint typecheck
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

unit: $(INSTALLED)
	$(BIN)/pytest tests/unit tests/property

e2e: $(INSTALLED)
	$(BIN)/pytest tests/e2e

bench: $(BENCH_INSTALLED)
	$(BIN)/python loadtest/bench_codec.py
	$(BIN)/python loadtest/bench_scanner.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
