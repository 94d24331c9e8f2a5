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

bench-audit: $(VENV)/.installed-dev
	$(BIN)/python -m bench.audit

bench-policies: $(VENV)/.installed-dev
	$(BIN)/python -m bench.policies

bench-persona: $(VENV)/.installed-dev
	$(BIN)/python -m bench.persona

bench-runs: $(VENV)/.installed-dev
	$(BIN)/python -m bench.runs

bench-admin: $(VENV)/.installed-dev
	$(BIN)/python -m bench.admin

clean:
	rm -rf $(VENV) var
