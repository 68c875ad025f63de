# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install test demo dev lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv resolves and installs the Dagster stack in seconds instead of minutes; it is bootstrapped from
# PyPI into the venv itself, so nothing but Python has to be on the machine.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python -m vk_pipeline.demo

dev: $(STAMP)
	$(BIN)/python -m vk_pipeline.dev

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/client_bench.py
	$(BIN)/python benchmarks/storage_bench.py
	$(BIN)/python benchmarks/assets_bench.py

clean:
	rm -rf $(VENV) .local .dagster_home .pytest_cache
