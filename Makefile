# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU torch keeps installs fast; GPU users get the CUDA/ROCm build through the docker images.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint demo clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: installed later as a dependency it would resolve to a multi-GB CUDA build
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -c constraints.txt -e ".[engine,service,dev]"
	touch $(STAMP)

test: install
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check finetuning tests
	$(BIN)/ruff format --check finetuning tests
	$(BIN)/mypy

demo: install
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) .cache demo-output .pytest_cache .mypy_cache .ruff_cache
