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
.PHONY: help install lock test test-fast train-mri2audio train-wav2uti phantom bench \
        reproduce-mri2audio reproduce-wav2uti clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'
	@echo "  variables: QUICK=1 (small CPU preset)  GPUS=N (DDP on N devices)  ARGS='--trainer.max_epochs=5 ...'"

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

train-mri2audio: $(STAMP) ## train the mri2audio paper configuration (phantom data when none is given)
	$(ART) fit --config configs/mri2audio.yaml $(if $(QUICK),--config configs/mri2audio/quick.yaml) --test_after_fit true $(DEVICE_ARGS) $(ARGS)

train-wav2uti: $(STAMP) ## train the wav2uti paper configuration (GPUS=4 for 4-GPU DDP)
	$(ART) fit --config configs/wav2uti.yaml $(if $(QUICK),--config configs/wav2uti/quick.yaml) --test_after_fit true $(DEVICE_ARGS) $(ARGS)

phantom: $(STAMP) ## write both phantom cohorts under OUT (default data/phantom)
	$(ART) phantom mri2audio --out $(OUT)/mri2audio
	$(ART) phantom wav2uti --out $(OUT)/wav2uti

bench: $(STAMP) ## speed/memory benchmarks -> $(BENCH_OUT) (QUICK=1 for a short run)
	$(ART) bench --out $(BENCH_OUT) $(if $(QUICK),--quick)

reproduce-mri2audio: $(STAMP) ## the mri2audio paper's Table 1 on the phantom (QUICK=1: small preset)
	$(ART) reproduce mri2audio $(if $(QUICK),--quick) $(ARGS)

reproduce-wav2uti: $(STAMP) ## the wav2uti paper's Tables 1-2 on the phantom (QUICK=1: small preset)
	$(ART) reproduce wav2uti $(if $(QUICK),--quick) $(ARGS)

clean: ## remove logs, checkpoints and caches (keeps .venv)
	rm -rf lightning_logs logs wandb checkpoints .pytest_cache
