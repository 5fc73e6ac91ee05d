# yedge: set-up, tests, and the workflow as chained targets.
#   make demo                      set up .venv, then run the workflow on a random checkpoint
#   make test                      lint (ruff, mypy), then run the test suite
#   make test-fast                 the fast tier only (markers in pyproject.toml)
#   make export WEIGHTS=x.pth      individual steps, sharing WS (default ./workspace)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
YEDGE := $(BIN)/yedge
WS ?= workspace
CONFIG ?= auto
LAYOUT ?= fpn
BATCH ?= 1
COCO ?=
IMAGES ?= $(COCO)/val2017
ANNOTATIONS ?= $(COCO)/annotations/instances_val2017.json
BACKEND ?= auto
DEVICE ?= cpu
BATCH_SIZES ?=
LOOP ?= 100
# The demo: the two sample photos with their COCO annotations, and a random checkpoint.
DEMO_WS ?= demo-workspace
DEMO_WEIGHTS = $(DEMO_WS)/random_r50_seed0.pth
DEMO_DATA := tests/data

.PHONY: install lint test test-fast demo export prep infer eval bench show report doctor readme-pictures clean

install: $(VENV)/.installed

# torch is pinned first: on these machines 2.13.0 is the CPU build on local disk, while a bare
# `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,ray,openvino,track,plots]'
	touch $@

lint: install
	$(BIN)/ruff check yolact_edge_cli tests bench
	$(BIN)/mypy

# pytest-xdist: one worker per core, each test sent to whichever worker is free (worksteal); what
# the tests build (checkpoints, exports, prepared workspaces) is built once and shared
# (tests/conftest.py). TEST_WORKERS=0 runs everything in this one process.
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist worksteal

test: install lint
	$(PYTEST)

# the inner loop: unit and in-process tests, no whole workflows, Ray, Ascend or end-to-end runs
# (2–3 minutes on 2 cores); `make test` runs everything and is what CI runs
test-fast: install
	$(PYTEST) -m "not slow and not ray and not ascend and not e2e"

demo: install
	$(YEDGE) -w "$(DEMO_WS)" random-weights -o "$(DEMO_WEIGHTS)"
	$(MAKE) --no-print-directory export prep infer eval bench show report WS="$(DEMO_WS)" WEIGHTS="$(DEMO_WEIGHTS)" \
		IMAGES="$(DEMO_DATA)" ANNOTATIONS="$(DEMO_DATA)/golden/eval_mini/instances_mini.json" LOOP=5
	@echo
	@echo "The weights are RANDOM (mAP ≈ 0 on real data); the two sample photos were annotated from"
	@echo "this random model's own detections, so the numbers above only show the workflow runs."
	@echo "Real numbers: make export prep infer eval bench WEIGHTS=yolact_edge_resnet50_54_800000.pth COCO=/data/coco"

export: install
	@test -n "$(WEIGHTS)" || { echo "usage: make export WEIGHTS=checkpoint.pth [CONFIG=auto] [LAYOUT=fpn] [BATCH=1]"; exit 2; }
	$(YEDGE) -w "$(WS)" export --weights "$(WEIGHTS)" --config $(CONFIG) --layout $(LAYOUT) --batch-size $(BATCH)

prep: install
	$(YEDGE) -w "$(WS)" prep --images "$(IMAGES)" --annotations "$(ANNOTATIONS)"

infer: install
	$(YEDGE) -w "$(WS)" infer --backend $(BACKEND) --device $(DEVICE)

eval: install
	$(YEDGE) -w "$(WS)" eval

bench: install
	$(YEDGE) -w "$(WS)" bench --backend $(BACKEND) --device $(DEVICE) --loop $(LOOP) --warmup 1 \
		$(if $(BATCH_SIZES),--batch-sizes $(BATCH_SIZES),)

show: install
	$(YEDGE) -w "$(WS)" show --gt --score-threshold 0.4

report: install
	$(YEDGE) -w "$(WS)" report

doctor: install
	$(YEDGE) -w "$(WS)" doctor

# the README's pictures, from the demo's workspace (needs Chromium: apt-get install chromium)
readme-pictures: demo
	$(BIN)/python docs/readme_pictures.py "$(DEMO_WS)"

clean:
	rm -rf "$(DEMO_WS)" .pytest_cache
