# tessera: the README's commands. Every target builds what it needs on a bare machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help venv demo test test-py lint bench bench-quick model clean

help:
	@echo "make demo   - build .venv if needed, run the main job on the local default"
	@echo "make test   - build .venv if needed, run linters and the test suite"
	@echo "make bench  - the benchmark report (make bench-quick for the short one)"
	@echo "make model  - retrain the shipped default model from scratch"

venv: $(STAMP)

# uv resolves and installs TensorFlow + Beam in well under a minute from a warm
# cache; pip is the fallback bootstrap only.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade uv
	$(VENV)/bin/uv pip install --python $(PY) -e '.[all,dev]'
	@touch $(STAMP)

demo: $(STAMP) web-deps
	$(VENV)/bin/tessera demo $(DEMO_ARGS)

test: $(STAMP) web-deps lint lint-infra test-py

test-py: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/tessera bench --json bench-output/bench.json

bench-quick: $(STAMP)
	$(VENV)/bin/tessera bench --quick --json bench-output/bench.json

model: $(STAMP)
	$(VENV)/bin/tessera train-default

# Helm/Terraform/Docker checks in their own venv (checkov clashes with our deps).
include mk/infra.mk
# The map page's web-map library (npm) and Chromium for its browser test.
include mk/web.mk

clean:
	rm -rf $(VENV) .venv-infra .tools node_modules demo-output bench-output
