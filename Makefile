# retdm-keras: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the data folder recipes, tests, demos and benchmarks read (the library never guesses it)
export RETDM_DATA_DIR ?= $(abspath ../shared/data)
# pytest-xdist workers for `make test`: one per core, at most 4 (each holds a TensorFlow);
# whole test files go to one worker, so module fixtures run once. TEST_WORKERS=0: serial.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; a = getattr(os, 'sched_getaffinity', None); \
	print(min(4, len(a(0)) if a else os.cpu_count() or 1))")

.PHONY: install demo demo-finetune test lint docs bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# an environment from before the package required `tensorflow`: its tensorflow-cpu would
	# share the tensorflow module with it, so it goes first
	$(PY) -m pip uninstall --quiet --yes tensorflow-cpu
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package with its test and docs extras

demo: $(STAMP)  ## frozen backbone: tuned BR-LR, BCE, RETDM on MIML scene, 3 seeds, test table
	$(PY) examples/scene_demo.py

demo-finetune: $(STAMP)  ## fine-tune MobileNetV2: BCE and RETDM on MIML scene (slow on a CPU)
	$(PY) examples/scene_finetune_demo.py

test: $(STAMP)  ## the whole test suite (lint included)
	$(VENV)/bin/ruff check retdm_keras retdm_keras_cli tests examples benchmarks docs/_gen
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check retdm_keras retdm_keras_cli tests examples benchmarks docs/_gen
	$(VENV)/bin/ruff format --check retdm_keras retdm_keras_cli tests examples benchmarks docs/_gen

docs: $(STAMP)  ## the documentation site -> site/ (mkdocs build --strict: any warning fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)  ## benchmarks -> benchmarks/results (full ~2.5 h; BENCH_ARGS=--quick ~15 min)
	nice -n 10 $(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache runs site
