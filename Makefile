# Every target creates or reuses .venv itself: a fresh machine needs only python3.
#
# Two levels of install share one .venv:
#   .venv/.installed       the whole development environment (make test, lint, bench)
#   .venv/.core-installed  the core only (make demo): a few small wheels, seconds
# The demo reuses the full environment when it is already there.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.core-installed

.PHONY: demo test lint typecheck pytest bench dist clean conformance graph

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the development environment into $(VENV) (frameworks, linters; a few minutes the first time)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP) $(CORE_STAMP)

$(CORE_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if test -f $(STAMP) && test $(STAMP) -nt pyproject.toml; then \
		echo "reusing the development environment in $(VENV)"; \
	else \
		echo "installing the core into $(VENV): pydantic, pyjwt, cryptography, httpx, tenacity"; \
		$(BIN)/python -m pip install --quiet --no-compile --disable-pip-version-check -e .; \
	fi
	@touch $(CORE_STAMP)

demo: $(CORE_STAMP)
	$(BIN)/aiinvariants demo

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# The MCP conformance suite's server scenarios against an official-SDK server
# and a FastMCP server, each unguarded and guarded (tools/conformance.py): no scenario may fail guarded
# that passes unguarded. Exit 2 (npm or the registry not reachable) skips.
conformance: $(STAMP)
	$(BIN)/python tools/conformance.py || test $$? -eq 2
	$(BIN)/python tools/conformance.py \
		--unguarded '$(BIN)/python tests/fastmcp_conformance_server.py --port {port}' \
		--guarded '$(BIN)/python tests/fastmcp_conformance_server.py --port {port} --guarded' \
		|| test $$? -eq 2

# The import graph between the library's units, its cycles and its public
# surface, read from the sources (tools/import_graph.py; --dot for Graphviz).
graph:
	$(PYTHON) tools/import_graph.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The sdist and the wheel, in dist/. `build` is installed into .venv here so
# the target works from the core environment too; it builds in isolation
# with hatchling, as pip does.
dist: $(CORE_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'build>=1.2'
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	@ls -l dist

clean:
	rm -rf $(VENV) dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
