# The two README commands: `make test` and `make demo`. Both set up .venv first when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS := requirements.txt requirements-cpu.txt requirements-dev.txt requirements-nodeps.txt tools/setup_env.sh

.PHONY: setup test test-slow test-all lint format demo bench gpu-check

$(STAMP): $(REQS)
	bash tools/setup_env.sh

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(VENV)/bin/pytest -m "not slow"

test-slow: setup
	$(VENV)/bin/pytest -m slow

test-all: lint
	$(VENV)/bin/pytest

demo: setup
	$(PY) -m tools.demo

bench: setup
	$(PY) -m bench.run

gpu-check: setup
	$(PY) -m bench.gpu_check
