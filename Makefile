# Every target does its own set-up from a fresh clone: a virtualenv in .venv with the project installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= .data

.PHONY: install up demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## The embedded stack plus `dagster dev` (webserver and daemon); UI on http://localhost:3000. Ctrl+C stops all.
up: $(STAMP)
	$(BIN)/payment-platform up --data-dir $(DATA_DIR)

## The main flow, headless, ending with a printed summary.
demo: $(STAMP)
	$(BIN)/payment-platform demo

## The whole test suite, embedded stack included (started by the suite itself).
test: $(STAMP)
	$(BIN)/python -m pytest

## Benchmarks: each prints its figure and the ratio to a raw baseline measured in the same run.
bench: $(STAMP)
	for b in payment_platform_tests/benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
