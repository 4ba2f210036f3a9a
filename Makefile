# nlpflow: `make run` trains on the bundled sample; `make test` runs the whole suite.
# Both create .venv and install the project when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel of torch; for CUDA see README ("GPU install"). TORCH_INDEX adds a wheel index,
# e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu on machines without a local wheel.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.nlpflow-installed

.PHONY: install run test test-fast docs lint format clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Every install (cheap when current): `dvc plots show` pages with Vega inline, no CDN
install: $(STAMP)
	$(BIN)/python -m nlpflow.pipeline.dvc_plots

run: install
	$(BIN)/nlpflow run

test: install
	$(BIN)/python -m pytest

# The fast loop: pure functions only (tests/unit), no process started, under 2 minutes on
# 2 cores. tests/README.md says which folder a new test belongs in.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m "not slow and not subprocess" -q

# The documentation site (docs/, mkdocs.yml) into site/; --strict fails on a broken link
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# README's pictures of the MLflow, Prefect and report pages (headless Chromium, tests/ui)
screenshots: install
	NLPFLOW_UI_SCREENSHOTS=reports/ui $(BIN)/python -m pytest tests/ui -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/nlpflow dvc-yaml --check
	$(BIN)/pylint --disable=all --enable=duplicate-code --score=n src

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf data/gathered data/processed models reports .nlpflow
