# builder's development loop. `make test` is the test command (README, .ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup engine parent-image registry infra test test-unit test-lowest lint bench demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# the distribution was called `builder` before it became `builder-cli`
	$(PY) -m pip uninstall --quiet --yes builder 2>/dev/null || true
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# A Docker engine that answers `docker info`; installs and starts Debian's docker.io if needed.
engine:
	bash tests/infra/engine.sh

# python:3.11-slim, pulled or built from Debian packages (debootstrap + docker import).
parent-image: engine
	bash tests/infra/parent_image.sh

# Debian's docker-registry on 127.0.0.1:5000.
registry: engine
	bash tests/infra/registry.sh

infra: engine parent-image registry

test: setup infra
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest tests/unit

# The lowest versions pyproject.toml allows for builder's own dependencies (uv's lowest-direct
# resolution, in a venv of its own), against the unit, download and status tests: a declared
# minimum that does not work fails here. CI runs it after `make test`.
LOWEST_VENV ?= .venv-lowest
LOWEST_TESTS := tests/unit --ignore=tests/unit/targets tests/integration/repositories \
	tests/integration/code tests/integration/decide tests/integration/container
test-lowest: setup
	rm -rf $(LOWEST_VENV)
	$(VENV)/bin/uv venv --quiet --python $(PY) $(LOWEST_VENV)
	UV_NATIVE_TLS=1 $(VENV)/bin/uv pip install --quiet --python $(LOWEST_VENV)/bin/python \
		--resolution lowest-direct -e '.[all]' 'pytest>=8' 'pytest-timeout>=2.2'
	$(VENV)/bin/uv pip list --python $(LOWEST_VENV)/bin/python | grep -iE \
		'^(pygithub|python-gitlab|requests|urllib3|typer|click|rich|pyyaml|platformdirs|docker|jinja2) '
	$(LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider -q $(LOWEST_TESTS)

lint: setup
	$(VENV)/bin/ruff check builder tests
	$(VENV)/bin/mypy

# Users run builder with compiled bytecode (pip writes it); measure that, even where the
# environment sets PYTHONDONTWRITEBYTECODE.
# `make bench NETWORK=wan` puts the registry and the code host behind an emulated WAN
# (40 ms, 20 Mbit/s up, 100 down); BENCH_ARGS passes more options (python -m tests.bench -h).
NETWORK ?= loopback
BENCH_ARGS ?=
bench: export PYTHONDONTWRITEBYTECODE :=
bench: setup infra
	$(PY) -m compileall -q builder tests
	$(PY) -m tests.bench --network $(NETWORK) $(BENCH_ARGS)

demo: setup infra
	$(PY) -m tests.demo

clean:
	rm -rf dist build .pytest_cache .mypy_cache .ruff_cache $(LOWEST_VENV)
