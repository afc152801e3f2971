# The two commands of the README: `make run` (the pipeline on params.yaml's profile) and `make test`.
# Both create .venv/ in the repo root on first use; torch is pinned and installed first (on the project's
# machines pip finds the CPU wheel on disk; elsewhere export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu).
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup gpaw data run test lint bench clean-venv

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(MAKE) gpaw
	touch $@

# GPAW (DFT stage): Debian's PAW setups, libxc and OpenBLAS (apt, as root, only when missing), then GPAW's C
# extension built from PyPI's sdist against them (~30 s; C++ since GPAW 26, hence CC=g++; --no-deps: the setups
# come from Debian's gpaw-data, not PyPI's). Version pinned in requirements.lock's comment line `# gpaw==...`.
GPAW_PIN := $(shell sed -n 's/^# *\(gpaw==[0-9.]*\).*/\1/p' requirements.lock)
gpaw:
	@if [ -d /usr/share/gpaw-setups ] && [ -f /usr/include/xc.h ] && command -v g++ >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends gpaw-data libxc-dev libopenblas-dev g++; \
	fi; \
	if [ -d /usr/share/gpaw-setups ] && [ -f /usr/include/xc.h ] && command -v g++ >/dev/null; then \
	  CC=g++ $(BIN)/python -m pip install --quiet --no-deps $(GPAW_PIN); \
	else echo "GPAW skipped (DFT stage and its tests need it): run as root or" \
	  "'sudo apt-get install -y gpaw-data libxc-dev libopenblas-dev g++', then 'make gpaw'"; fi

setup: $(VENV)/.installed

data: setup
	autoperi data fetch

run: data
	dvc repro

# Two pytest workers: one runs the smoke pipeline and nbval (the critical path, one work unit: tests/conftest.py's
# scheduler), the other the unit tests meanwhile. `pytest` alone runs everything in one process.
test: data
	pytest -n 2

lint: setup
	ruff check autoperi tests benchmarks

bench: data
	python benchmarks/preprocess.py

clean-venv:
	rm -rf $(VENV)
