# The two Quickstart commands: `make study` (a study on the embedded defaults) and `make test`.
# Both create .venv and install what they need: torch==2.13.0 first (the CPU build this
# machine has on disk; a bare `torch` would pull a multi-GB CUDA build), then the package.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lwgan-installed

.PHONY: install study test test-all report

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test]"
	# Quality metrics (eval/lpips, eval/fid, eval/kid): lpips ships the LPIPS linear layers, torch-fidelity the
	# FID Inception module. Both declare torchvision, which would replace torch 2.13.0: installed without deps
	# (what they need besides, numpy, scipy, pillow and tqdm, the package already has).
	$(BIN)/python -m pip install -q --no-deps "lpips==0.1.4" "torch-fidelity==0.4.0"
	touch $(STAMP)

install: $(STAMP)

study: $(STAMP)
	$(BIN)/lwgan-study run

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""
