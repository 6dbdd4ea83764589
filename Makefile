# gpufleet — `make run` starts the agent on this machine, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=
# A Ray head for the scale-out adapter's tests, in a venv of its own (the hub talks to it
# over HTTP only, so gpufleet itself never imports ray).
RAY_VENV  := .venv-ray
RAY_STAMP := $(RAY_VENV)/.installed-stamp
RAY_PIN   := ray[default]==2.60.0

.PHONY: run test lint typecheck unit venv system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(RAY_STAMP):
	$(PYTHON) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/python -m pip install -q '$(RAY_PIN)'
	touch $(RAY_STAMP)

## Start the node agent: SQLite under ~/.local/share/gpufleet, this machine, http://127.0.0.1:8003
run: $(STAMP)
	$(BIN)/gpufleet agent $(ARGS)

## System tools the tests use for real (promtool); installed when missing and we are root.
system-deps:
	@bash scripts/system-deps.sh

## ruff, mypy, pytest — the same checks CI runs.
test: $(STAMP) $(RAY_STAMP) system-deps lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	GPUFLEET_TEST_RAY=$(CURDIR)/$(RAY_VENV)/bin/ray $(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(RAY_VENV) .pytest_cache .mypy_cache .ruff_cache
