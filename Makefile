# The project's commands. From a fresh clone, with Python 3.11:
#   make demo   # set up, then run the emulator with a demo company and the Dagster UI
#   make test   # set up, then run the whole test suite (needs PostgreSQL and Chromium: see README)
#   make lint
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install: reinstall only when pyproject.toml is newer.
STAMP := $(VENV)/.qb-pipelines-installed
QB_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: demo demo-headless test lint install services clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/qb-pipelines demo

demo-headless: install
	$(BIN)/qb-pipelines demo --headless

services:
	scripts/ensure-test-services

# -ra lists every failure, error and skip with its reason; .ci/run fails the build on any skip.
test: services install
	QB_TEST_POSTGRES_URL=$(QB_TEST_POSTGRES_URL) $(BIN)/pytest -ra $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check qb_pipelines qb_pipelines_tests

clean-demo:
	rm -rf .demo
