# The two commands of the README: `make run` (the pipeline on params.yaml's profile) and `make test`.
# Both create .venv/ in the repo root on first use; torch is pinned and installed first (on the project's
# machines pip finds the CPU wheel on disk; elsewhere export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu).
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup data run test lint bench clean-venv

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

data: setup
	autoperi data fetch

run: data
	dvc repro

test: data
	pytest

lint: setup
	ruff check autoperi tests benchmarks

bench: data
	python benchmarks/preprocess.py

clean-venv:
	rm -rf $(VENV)
