# retdm-keras: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the data folder recipes, tests, demos and benchmarks read (the library never guesses it)
export RETDM_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo demo-finetune test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package with its test extras

demo: $(STAMP)  ## frozen backbone: linear probe, BCE, RETDM on MIML scene, 3 seeds, test table
	$(PY) examples/scene_demo.py

demo-finetune: $(STAMP)  ## fine-tune MobileNetV2: BCE and RETDM on MIML scene (slow on a CPU)
	$(PY) examples/scene_finetune_demo.py

test: $(STAMP)  ## the whole test suite (lint included)
	$(VENV)/bin/ruff check retdm_keras retdm_keras_cli tests examples benchmarks
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check retdm_keras retdm_keras_cli tests examples benchmarks
	$(VENV)/bin/ruff format --check retdm_keras retdm_keras_cli tests examples benchmarks

bench: $(STAMP)  ## benchmarks -> benchmarks/results (full < 90 min; BENCH_ARGS=--quick ~12 min)
	nice -n 10 $(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs
