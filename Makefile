# The two commands of the README: `make demo` and `make test`. Both set up first (idempotent).
VENV ?= $(HOME)/.cache/pinrec/venv
export PINREC_VENV := $(VENV)
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(VENV)/bin/python
export PYSPARK_DRIVER_PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-all test-fast lint clean

setup:
	@bash .ci/setup.sh

demo: setup
	$(VENV)/bin/pinrec demo

# CI's tier: every real component at least once, in <= 35 minutes on 2 cores (README).
test: setup
	$(VENV)/bin/python -m pytest -m "not gpu and not full" --durations=40 $(PYTEST_ARGS)

# Everything there is (nightly): the long variants too; GPU tests skip themselves without a GPU.
test-all: setup
	$(VENV)/bin/python -m pytest --durations=60 $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not gpu and not spark and not slow and not integration and not full" $(PYTEST_ARGS)

# What CI checks besides the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf var
