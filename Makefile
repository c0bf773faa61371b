# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test venv bench clean

# The core and every plugin distribution of this repository, each installed from its own pyproject.
PACKAGES := -e '.[test,plots,ray]' -e plugins/baselines -e plugins/d2pruner -e plugins/grounding -e registry

$(STAMP): pyproject.toml plugins/*/pyproject.toml registry/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# Pinned CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q $(PACKAGES)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tokcompress demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
