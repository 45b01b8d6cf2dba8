# tinyai — the two commands of the README's Quick start, and a few more.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench docs clean

# A virtual environment with tinyai installed in editable mode.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.base: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[progress]'
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Trains the MNIST MLP (784-128-64-10) on the bundled 10,000 images and prints its test accuracy.
demo: $(VENV)/.base
	$(BIN)/tinyai train --example mnist-mlp

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

bench: $(VENV)/.dev
	$(BIN)/python -m benchmarks

# The documentation site (docs/ -> site/); --strict turns broken links and
# missing API references into errors.
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .hypothesis
