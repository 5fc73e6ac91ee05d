# yedge: set-up, tests, and the workflow as chained targets.
#   make demo                      set up .venv, then run the workflow on a random checkpoint
#   make test                      run the test suite
#   make export WEIGHTS=x.pth      individual steps, sharing WS (default ./workspace)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
YEDGE := $(BIN)/yedge
WS ?= workspace
CONFIG ?= auto
LAYOUT ?= fpn
BATCH ?= 1
DEMO_WS ?= demo-workspace
DEMO_WEIGHTS := $(DEMO_WS)/random_r50_seed0.pth

.PHONY: install test demo export clean

install: $(VENV)/.installed

# torch is pinned first: on these machines 2.13.0 is the CPU build on local disk, while a bare
# `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(YEDGE) -w $(DEMO_WS) random-weights -o $(DEMO_WEIGHTS)
	$(YEDGE) -w $(DEMO_WS) export --weights $(DEMO_WEIGHTS) --layout $(LAYOUT) --batch-size $(BATCH)
	@echo "Demo weights are random (mAP ≈ 0). For real numbers: make export WEIGHTS=yolact_edge_resnet50_54_800000.pth"

export: install
	@test -n "$(WEIGHTS)" || { echo "usage: make export WEIGHTS=path/to/checkpoint.pth [CONFIG=auto] [LAYOUT=fpn] [BATCH=1]"; exit 2; }
	$(YEDGE) -w $(WS) export --weights $(WEIGHTS) --config $(CONFIG) --layout $(LAYOUT) --batch-size $(BATCH)

clean:
	rm -rf $(DEMO_WS) .pytest_cache
