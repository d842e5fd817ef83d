# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/wg db upgrade
	$(BIN)/wg run

# The suite runs against SQLite, and against PostgreSQL too when WG_TEST_DATABASE_URL is
# set or a server answers on 127.0.0.1:5432 (tests/conftest.py decides).
test: $(VENV)/.installed-test
	$(BIN)/ruff check service forms emails scheduler tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Benchmarks of the sending path (docs/performance.md): one table, bench/results.json.
# BENCH_QUICK=1 runs every figure at a tenth of the size; BENCH_ARGS=--large sends to 100,000.
bench: $(VENV)/.installed
	bench/setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check service forms emails scheduler tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
