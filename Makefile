# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv if missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The supported transformers range (pyproject.toml, tokcompress.hf.versions.SUPPORTED_TRANSFORMERS): .venv holds the
# newest release, .venv-tf-low the oldest, and `make test` runs tests/hf in both.
TF_HIGH := 5.25.0
TF_LOW  := 5.14.0
LOW     := .venv-tf-low
LOW_STAMP := $(LOW)/.installed-stamp
# The lmms-eval plugin's tests need lmms-eval. Its full install upgrades torch to a multi-GB CUDA build (through
# torchvision) and pulls wandb, openai, opencv, yt-dlp...; the evaluator, the CLI and the task loader import only
# these (filelock < 4: lmms-eval 0.7.3 imports filelock._api, which filelock 4 removed).
LMMS_EVAL := lmms-eval==0.7.3
LMMS_DEPS := accelerate loguru sacrebleu evaluate pytz tenacity pytablewriter 'filelock<4'
LMMS_STAMP := $(VENV)/.lmms-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# transformers >= 5.25 loads hub kernels by default (downloads); tests run offline and never need them.
export USE_HUB_KERNELS := 0

.PHONY: demo test test-tf-low venv lmms bench clean

# The core and every plugin distribution of this repository, each installed from its own pyproject.
PLUGINS  := -e plugins/baselines -e plugins/d2pruner -e plugins/grounding -e registry
PACKAGES := -e '.[test,plots,ray]' $(PLUGINS)

$(STAMP): pyproject.toml plugins/*/pyproject.toml registry/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# Pinned CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q $(PACKAGES)
	# 5.25 requires kernels>=0.19.1 (only for hub kernels); where the index lacks it, install without it.
	$(BIN)/python -m pip install -q transformers==$(TF_HIGH) 2>/dev/null \
	  || { echo "kernels>=0.19.1 not on this index: transformers $(TF_HIGH) without it"; \
	       $(BIN)/python -m pip install -q --no-deps transformers==$(TF_HIGH) 'huggingface-hub>=2.4'; }
	touch $(STAMP)

$(LOW_STAMP): pyproject.toml plugins/*/pyproject.toml registry/pyproject.toml
	test -x $(LOW)/bin/python || $(PYTHON) -m venv $(LOW)
	$(LOW)/bin/python -m pip install -q torch==2.13.0
	$(LOW)/bin/python -m pip install -q -e '.[test]' $(PLUGINS) transformers==$(TF_LOW)
	touch $(LOW_STAMP)

$(LMMS_STAMP): $(STAMP) plugins/lmms_eval/pyproject.toml
	$(BIN)/python -m pip install -q --no-deps $(LMMS_EVAL) -e plugins/lmms_eval
	$(BIN)/python -m pip install -q $(LMMS_DEPS)
	touch $(LMMS_STAMP)

venv: $(STAMP)

lmms: $(LMMS_STAMP)

demo: $(STAMP)
	$(BIN)/tokcompress demo

test: $(STAMP) $(LMMS_STAMP) $(LOW_STAMP)
	$(BIN)/python -m pytest
	$(LOW)/bin/python -m pytest tests/hf

test-tf-low: $(LOW_STAMP)
	$(LOW)/bin/python -m pytest tests/hf

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(LOW) build *.egg-info
