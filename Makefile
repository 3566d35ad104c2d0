# Articulate: every target creates/refreshes the virtual environment itself, so a fresh clone
# needs only `make test` or `make train-mri2audio`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ART := $(VENV)/bin/articulate
STAMP := $(VENV)/.installed

# Training knobs: QUICK=1 uses the small CPU preset; GPUS=N uses N devices with DDP; ARGS is
# passed through to `articulate fit` (any --trainer.* / --model.* / --data.* override).
QUICK ?=
GPUS ?=
ARGS ?=
BENCH_OUT ?= results/bench.json
OUT ?= data/phantom

ifeq ($(strip $(GPUS)),)
DEVICE_ARGS :=
else ifeq ($(strip $(GPUS)),1)
DEVICE_ARGS := --trainer.devices=1
else
DEVICE_ARGS := --trainer.devices=$(GPUS) --trainer.strategy=ddp
endif

.DEFAULT_GOAL := help
.PHONY: help install lock test test-fast phantom bench gpu-check lint clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'
	@echo "  variables: QUICK=1 (small CPU preset)  GPUS=N (DDP on N devices)  ARGS='--trainer.max_epochs=5 ...'"
	@for d in $$(PYTHONPATH=. $(PYTHON) -m articulate.cli.directions --names); do \
	  printf '  make %-22s %s\n' "train-$$d" "train $$d (QUICK=1 GPUS=N ARGS=...)" "reproduce-$$d" "the $$d paper's table (QUICK=1)"; done

# The environment is installed from the committed lock (exact versions of every package, build tools
# included), so a fresh clone installs the same set on any day; the stamp is rebuilt whenever
# pyproject.toml or the lock changes. The torch family must import, or every target stops here.
LOCK := requirements.lock
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $$(grep -E '^(pip|setuptools|wheel)==' $(LOCK))
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) tools/lockfile.py check --lock $(LOCK)
	$(PY) -c "import torch, torchaudio, torchvision; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'torchvision', torchvision.__version__)"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (editable) with test tools, from requirements.lock

lock: ## regenerate requirements.lock from pyproject.toml in a fresh temporary environment
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip setuptools wheel
	.lock-venv/bin/python -m pip install -q -e ".[dev]"
	.lock-venv/bin/python tools/lockfile.py write --lock $(LOCK)
	rm -rf .lock-venv

test: $(STAMP) ## run the whole test suite (CPU, a few minutes)
	$(PY) -m pytest -q tests

test-fast: $(STAMP) ## unit tests only (skips end-to-end training and DDP tests)
	$(PY) -m pytest -q -m "not slow and not ddp" tests

# One rule per kind of target, for every registered direction (`articulate directions` lists them):
# `articulate train` builds the config stack in the registry's order (config, preset, variants).
train-%: $(STAMP) ## train-<direction> for each direction listed below
	$(ART) train $* $(if $(QUICK),--quick) $(DEVICE_ARGS) $(ARGS)

reproduce-%: $(STAMP) ## reproduce-<direction>: the paper table of each direction below
	$(ART) reproduce $* $(if $(QUICK),--quick) $(ARGS)

phantom: $(STAMP) ## write every direction's phantom cohort under OUT (default data/phantom)
	for kind in $$($(ART) directions --phantoms); do $(ART) phantom $$kind --out $(OUT)/$$kind || exit 1; done

bench: $(STAMP) ## speed/memory benchmarks -> $(BENCH_OUT) (QUICK=1 for a short run)
	$(ART) bench --out $(BENCH_OUT) $(if $(QUICK),--quick)

gpu-check: $(STAMP) ## on a GPU, one short call: CUDA-only tests, the paper's 64-px stage 300 steps in bf16 (+/- torch.compile), 1 s of 112-px video through the cascade -> results/gpu-check.json
	$(PY) -m pytest -q -m cuda tests
	$(ART) bench --direction wav2uti --only gpu_check --device cuda --out results/gpu-check.json

lint: $(STAMP) ## ruff check (CI runs it; the formatter is not enforced: it would wrap lines past the 500-line module limit)
	$(VENV)/bin/ruff check .

clean: ## remove logs, checkpoints and caches (keeps .venv)
	rm -rf lightning_logs logs wandb checkpoints .pytest_cache
