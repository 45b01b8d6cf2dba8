# tinyai — the two commands of the README's Quick start, and a few more.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench docs screenshots clean test-gpu bench-gpu

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

# On a machine with an NVIDIA GPU (CUDA 12): the gpu extra (CuPy), then every
# test marked gpu (the CPU matrix again on CuPy arrays) and the GPU benchmark.
# Without a GPU both skip, saying why. benchmarks/gpu_session.sh runs both and keeps the output.
$(VENV)/.gpu: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,gpu]'
	touch $@

test-gpu: $(VENV)/.gpu
	$(BIN)/python -m pytest -q -m gpu -p no:cacheprovider

bench-gpu: $(VENV)/.gpu
	$(BIN)/python -m benchmarks gpu

# The documentation site (docs/ -> site/); --strict turns broken links and
# missing API references into errors.
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

# The built site in headless Chromium at desktop and phone widths (Debian: apt-get install chromium).
screenshots: docs
	docs/_ext/screenshots.sh

clean:
	rm -rf $(VENV) build site site-screenshots *.egg-info .pytest_cache .hypothesis
