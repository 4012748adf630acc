# One entry point for a fresh machine: `make test` and `make demo` create .venv when missing,
# install the pinned requirements (CPU torch 2.13.0 first) and the package in editable mode.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo notebooks lint install clean

$(STAMP): requirements-ci.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-ci.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

# The main job: LMF on DermaMNIST with the skin-lesion bundle, MC-dropout evaluation, a table of metrics.
# DATA_DIR=<folder with dermamnist.npz> uses a local copy; without it the file is downloaded.
demo: $(STAMP)
	$(if $(DATA_DIR),DATA_DIR=$(DATA_DIR)) $(PY) tutorials/skin_lesion_demo.py

# The tutorial notebooks, executed top to bottom with their quick settings (a few minutes each on a CPU; not part
# of `make test`). Data: MONAI_IMBALANCE_DATA, here the project's test data beside the checkout (the notebooks
# themselves default to data/ in the repository). To refresh the committed outputs, add
# --overwrite: $(PY) -m pytest --nbmake --overwrite tutorials/*.ipynb
MONAI_IMBALANCE_DATA ?= $(abspath ../shared/data)
notebooks: $(STAMP)
	MONAI_IMBALANCE_DATA=$(MONAI_IMBALANCE_DATA) MONAI_IMBALANCE_TUTORIAL_QUICK=1 $(PY) -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=900 tutorials/*.ipynb

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
