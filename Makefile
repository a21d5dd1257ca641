# The two fresh-machine commands are `make demo` and `make test` (see README.md).
# Everything they need is installed by `make setup`: Debian's clickhouse-server (for the wire-protocol
# tests) and a virtual environment with every extra. Services are started by the programs themselves.

PYTHON ?= python3
VENV ?= .venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-packages demo test test-fast lint bench clean

setup: system-packages $(STAMP)

system-packages:
	@command -v /usr/sbin/clickhouse-server >/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
	    clickhouse-server chromium docker-compose ; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/driftscope demo

test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

test-fast: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not slow" tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy schemas producers streams models consumers driftscope

clean:
	rm -rf $(VENV) build *.egg-info
