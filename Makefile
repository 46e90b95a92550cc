# Two entry points for a fresh machine: `make run` and `make test`. Everything else is a helper.
# PYTHON is the first python3 when pip may install there, else .venv/ (Debian's own python3
# refuses pip installs, PEP 668); see scripts/pick-python.sh. `make PYTHON=...` overrides it.
PYTHON ?= $(shell bash scripts/pick-python.sh)
PIP ?= $(PYTHON) -m pip

.PHONY: run test venv install install-test run-deps system-deps gateway serve stubs docs bench chaos

run: install run-deps  ## the whole walkthrough locally: Redis, Tyk, the plugin, an Auth0 stand-in, an echo upstream
	$(PYTHON) -m plugin stack

serve: install  ## the plugin server alone on tcp://127.0.0.1:5555
	$(PYTHON) -m plugin serve

test: install-test system-deps  ## unit and integration tests, then end-to-end tests through a real gateway
	-bash scripts/build-gateway.sh
	$(PYTHON) -m pytest tests/unit tests/integration tests/e2e

venv:  ## .venv/ when PYTHON is .venv/bin/python and it is missing or has no pip (a half-made one is redone)
	@if [ "$(PYTHON)" = .venv/bin/python ] && ! .venv/bin/python -c 'import pip' 2>/dev/null; then \
	  python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }; \
	  echo "python3 refuses pip installs here (PEP 668): installing into .venv/"; \
	  python3 -m venv --clear .venv; \
	fi

install: venv
	$(PIP) install --quiet --disable-pip-version-check -e .

install-test: venv
	$(PIP) install --quiet --disable-pip-version-check -e '.[test,bench]'

run-deps:  ## the Debian package the walkthrough needs: Redis
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

system-deps:  ## Debian packages the tests use: Redis and wrk (end to end), h2load (benchmark harness check)
	@command -v redis-server >/dev/null && command -v wrk >/dev/null && command -v h2load >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq redis-server wrk nghttp2-client; }

gateway:  ## build (or reuse) the pinned Tyk gateway
	bash scripts/build-gateway.sh

stubs:  ## regenerate plugin/coprocess from proto/
	$(PYTHON) scripts/gen_proto.py

docs:  ## regenerate docs/configuration.md from the code's settings
	$(PYTHON) scripts/gen_docs.py

bench: install-test  ## the benchmark harness (tables, docs/benchmarks/results.json and .png)
	$(PYTHON) -m bench

chaos: install  ## faults injected into the real stack (needs a gateway binary)
	$(PYTHON) -m plugin.devstack.chaos
