# Weir: `make demo` and `make test` are the two commands a new user needs.
# Both create .venv and install the project into it first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-test
BENCH_INSTALLED := $(VENV)/.installed-bench

.PHONY: demo test lint typecheck unit e2e bench bench-quick clean chromium redis-server debian-packages

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Weir needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# xds-protos and opentelemetry-proto both ship opentelemetry/proto/**/*_pb2.py; whichever
# pip writes last wins, and xds-protos's older copies break the OTLP exporter's imports.
# Writing opentelemetry-proto's files again makes the install order not matter.
OTEL_PROTO_VERSION = $$($(BIN)/python -c 'from importlib.metadata import version; print(version("opentelemetry-proto"))')

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps "opentelemetry-proto==$(OTEL_PROTO_VERSION)"
	@touch $@

$(BENCH_INSTALLED): pyproject.toml $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@

demo: $(INSTALLED)
	$(BIN)/weir sandbox

test: $(INSTALLED) lint typecheck debian-packages
	$(BIN)/pytest

# Debian packages the tests drive for real: Chromium for the inventory page's browser
# test, redis-server for the shared budget store. One apt step installs only what is
# missing, so repeated runs stay fast and a clean machine (CI runs as root) gets them.
DEBIAN_TOOLS := /usr/bin/chromium:chromium /usr/bin/redis-server:redis-server
debian-packages:
	@missing=""; for tool in $(DEBIAN_TOOLS); do \
		[ -x "$${tool%%:*}" ] || missing="$$missing $${tool#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing (apt-get)"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
chromium redis-server: debian-packages

lint: $(INSTALLED)
	$(BIN)/ruff check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

unit: $(INSTALLED)
	$(BIN)/pytest tests/unit tests/property

e2e: $(INSTALLED) debian-packages
	$(BIN)/pytest tests/e2e

bench: $(BENCH_INSTALLED)
	$(BIN)/python loadtest/bench_codec.py
	$(BIN)/python loadtest/bench_scanner.py
	$(BIN)/python tests/data/scanner/injection_report.py
	$(BIN)/python -m loadtest.bench_exchange
	$(BIN)/python -m loadtest.bench_fast_lane
	$(BIN)/python -m loadtest.bench_jwt
	$(BIN)/python -m loadtest.bench_otlp
	$(BIN)/python -m loadtest.bench_sniff
	$(BIN)/python -m loadtest.bench_budget
	$(BIN)/python loadtest/run_bench.py

# The load test alone, in about 2 minutes (fewer, shorter runs).
bench-quick: $(BENCH_INSTALLED)
	$(BIN)/python loadtest/run_bench.py --quick

# Fuzzing and soak (tests/fuzz/, loadtest/soak.py); reports go to reports/.
.PHONY: fuzz soak
FUZZ_INSTALLED := $(VENV)/.installed-fuzz
FUZZ_SECONDS ?= 30
SOAK_MINUTES ?= 10

$(FUZZ_INSTALLED): pyproject.toml $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[fuzz]'
	@touch $@

# Each target runs FUZZ_SECONDS; crash inputs land in reports/fuzz/, a summary at the end.
fuzz: $(FUZZ_INSTALLED)
	@mkdir -p reports/fuzz
	@status=0; for target in tests/fuzz/fuzz_*.py; do \
		name=$$(basename $$target .py); echo "== $$name ($(FUZZ_SECONDS)s)"; \
		$(BIN)/python tests/fuzz/run.py $$name -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=4096 -timeout=20 -artifact_prefix=reports/fuzz/$$name- \
			> reports/fuzz/$$name.log 2>&1 || status=1; \
		grep -E '^(Done|==[0-9]+== ERROR|=== Uncaught)' reports/fuzz/$$name.log || tail -5 reports/fuzz/$$name.log; \
	done; exit $$status

soak: $(INSTALLED)
	$(BIN)/python loadtest/soak.py --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
