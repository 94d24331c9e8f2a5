# Steward: `make run` starts the platform, `make test` runs the suite. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench-audit bench-policies bench-persona bench-runs bench-admin clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Steward needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements-anthropic.txt $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# The benchmarks' peers (LangGraph, DBOS): benchmark-only, installed by the bench-* targets alone.
$(VENV)/.installed-bench: requirements-bench.txt $(VENV)/.installed-dev
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $@

run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py bootstrap
	$(BIN)/python -m config.serve

test: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-audit: $(VENV)/.installed-bench
	$(BIN)/python -m bench.audit $(BENCH_ARGS)

bench-policies: $(VENV)/.installed-bench
	$(BIN)/python -m bench.policies $(BENCH_ARGS)

bench-persona: $(VENV)/.installed-bench
	$(BIN)/python -m bench.persona $(BENCH_ARGS)

bench-runs: $(VENV)/.installed-bench
	$(BIN)/python -m bench.runs $(BENCH_ARGS)

bench-admin: $(VENV)/.installed-bench
	$(BIN)/python -m bench.admin $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var
