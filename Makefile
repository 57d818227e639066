# The few targets a newcomer needs. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Labelled data to train the default model on when none exists; empty = the public file
# (downloaded once). Offline, e.g.: make serve DATA=../shared/data/dataTraining-dev.zip
DATA ?=
HOST ?= 127.0.0.1
PORT ?= 8000
SHARED ?= $(abspath ../shared)
PYTEST_ARGS ?= -m "not soak and not long"
LINT = $(BIN)/ruff check src tests benchmarks docs && $(BIN)/lint-imports

.PHONY: help serve test bench system-deps lint

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

# pip runs without -q: each package is a line as it is collected, downloaded and installed, so a
# long install shows progress in a terminal and in a log alike.
$(BIN)/activate:
	@echo "== creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# The default model kind distils a sentence encoder when it is trained, which takes PyTorch (the
# embed extra); serving it does not. torch is installed first, pinned, so that the extra does not
# pull another build. On Linux, PyPI's torch is the CUDA build (several GB): without an NVIDIA GPU
# (no nvidia-smi on PATH), the CPU build's index is used instead (a few hundred MB). Setting
# TORCH_INDEX, on the command line or in the environment, overrides the choice; TORCH_INDEX= (empty)
# installs from pip's own index (a mirror, for instance).
ifeq ($(origin TORCH_INDEX),undefined)
TORCH_INDEX = $(if $(filter Linux,$(shell uname -s)),$(if $(shell command -v nvidia-smi),,$(TORCH_CPU_INDEX)))
endif
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH = @echo "== installing PyTorch 2.13.0 from $(or $(TORCH_INDEX),pip's index) (the largest download)" && \
	$(BIN)/pip install torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))

$(VENV)/.serve: pyproject.toml | $(BIN)/activate
	$(TORCH)
	@echo "== installing moviegenre[serve,embed] into $(VENV)"
	$(BIN)/pip install -e ".[serve,embed]"
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/activate
	$(TORCH)
	@echo "== installing moviegenre[dev] into $(VENV)"
	$(BIN)/pip install -e ".[dev]"
	touch $@

# MOVIEGENRE_VIA_MAKE=1 tells moviegenre that make started it, so that its error messages say
# `make serve DATA=PATH` where they would say --data PATH (moviegenre.core.advice).
serve: $(VENV)/.serve  ## Serve the API and page on HOST:PORT (trains the default model first if none exists)
	MOVIEGENRE_VIA_MAKE=1 $(BIN)/moviegenre serve --host $(HOST) --port $(PORT) $(if $(DATA),--data $(DATA))

system-deps:  ## Debian packages the tests and benchmarks use (Chromium for the browser tests, wrk, npm)
	@if ! command -v chromium >/dev/null || ! command -v wrk >/dev/null || ! command -v npm >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
		else echo "make test needs Debian's chromium, wrk and npm: run 'sudo apt-get install chromium wrk npm' first" >&2; exit 1; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium wrk \
			$$(command -v npm >/dev/null || echo npm) >/dev/null; \
	fi

# axe-core, the accessibility checker the web page's browser test injects (npm ci stamps the lock).
tests/web/node_modules/.package-lock.json: tests/web/package-lock.json
	npm ci --prefix tests/web --no-audit --no-fund --silent

test: system-deps $(VENV)/.dev tests/web/node_modules/.package-lock.json  ## Install everything, lint, and run the test suite
	$(LINT)
	NLTK_DATA=$${NLTK_DATA:-$(SHARED)/nltk_data} MOVIEGENRE_TEST_DATA=$${MOVIEGENRE_TEST_DATA:-$(SHARED)/data} \
		HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev  ## ruff over the code, tests and benchmarks; import-linter over the package's layers
	$(LINT)
