# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=
# One uv for every install: here and in the Dockerfile (ARG UV_VERSION; a test keeps them equal).
UV_VERSION := 0.13.9
# Debian's chromium: the end-to-end test drives it with Playwright (Playwright's own browser
# download is not reachable from CI).
CHROMIUM := /usr/bin/chromium

.PHONY: install browser test stack-tools stack-test demo dev lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv resolves and installs the Dagster stack in seconds instead of minutes; it is bootstrapped from
# PyPI into the venv itself, so nothing but Python has to be on the machine.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# CI runs as root on Debian: install the browser there; elsewhere say how (the UI test fails
# with the same hint rather than skipping).
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "$(CHROMIUM) is missing: run 'sudo make browser' (Debian package chromium)" >&2; \
	  fi; }

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian's Docker engine (20.10) and mmdebstrap for the stack test, installed as root; elsewhere the
# test fails saying how. (Where apt may start services, as not in CI here, it starts Debian's
# engine, and the test uses that one instead of starting its own.)
STACK_TOOLS := /usr/bin/docker /usr/sbin/dockerd /usr/bin/mmdebstrap /usr/sbin/iptables
stack-tools:
	@for f in $(STACK_TOOLS); do test -x $$f || missing=1; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    docker.io mmdebstrap iptables >/dev/null; \
	fi

# The image built and the compose stack booted on a real engine, a dropped file crawled by a run
# container, nothing left behind (stack_test/); a few minutes, as root. Not part of `make test`.
stack-test: $(STAMP) stack-tools
	$(BIN)/python -m pytest -s stack_test

demo: $(STAMP)
	$(BIN)/python -m vk_pipeline.demo

# `make dev PORT=3001 EMULATOR_PORT=8766` (HOST, CODE_PORT too): each given one becomes an option.
PORT ?=
EMULATOR_PORT ?=
HOST ?=
CODE_PORT ?=
DEV_ARGS = $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)) \
	$(if $(EMULATOR_PORT),--emulator-port $(EMULATOR_PORT)) $(if $(CODE_PORT),--code-port $(CODE_PORT))
dev: $(STAMP)
	$(BIN)/python -m vk_pipeline.dev $(strip $(DEV_ARGS))

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every script behind the README's Performance table, one after another (they measure rates: run
# them on a quiet machine). About an hour in all; BENCH_DB=postgresql://... for a server.
BENCH_DB ?=
BENCH_ARGS = $(if $(BENCH_DB),--database-url $(BENCH_DB))
bench: $(STAMP)
	$(BIN)/python benchmarks/client_bench.py
	$(BIN)/python benchmarks/storage_bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/assets_bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/durability_bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/budget_bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/peer_bench.py $(BENCH_ARGS) --posts 1500 --comments 40000
	$(BIN)/python benchmarks/grouplists_bench.py
	$(BIN)/python benchmarks/automation_bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/search_bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/analysis_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .local .dagster_home .pytest_cache
