# The two commands of the README: `make demo` and `make test`. Both set up first (idempotent).
VENV ?= $(HOME)/.cache/pinrec/venv
export PINREC_VENV := $(VENV)
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(VENV)/bin/python
export PYSPARK_DRIVER_PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast clean

setup:
	@bash .ci/setup.sh

demo: setup
	$(VENV)/bin/pinrec demo

test: setup
	$(VENV)/bin/python -m pytest -m "not gpu" $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not gpu and not spark and not slow and not integration" $(PYTEST_ARGS)

clean:
	rm -rf var
