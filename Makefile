# The two commands: `make run` (whole pipeline on the bundled data) and `make test` (the test suite).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The project needs Python 3.11 (pyproject: >=3.11,<3.12); plain python3 only where no python3.11 is on PATH.
BASEPY ?= $(shell command -v python3.11 || command -v python3)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run smoke test test-fast test-stack lint mlflow-ui airflow clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(BASEPY) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## set up .venv only

run: $(STAMP)           ## the whole pipeline on the default data (20 stocks, 1990-2022)
	tradepipe run

smoke: $(STAMP)         ## the smoke profile as a DVC experiment (params.yaml untouched; `dvc exp show`)
	tradepipe run --profile smoke

test: $(STAMP)          ## the whole suite: unit, contracts, manifests, integration and end-to-end tests
	pytest

test-fast: $(STAMP)     ## what needs no server: unit and contract tests (a few minutes)
	pytest tests/unit tests/contracts

test-stack: $(STAMP)    ## the compose stack built and run end to end (needs a Docker engine; .ci/run starts one)
	pytest -m stack tests/stack

lint: $(STAMP)          ## ruff, mypy and the import contract (pyproject's [tool.importlinter])
	ruff check src pipelines dags tests benchmarks
	mypy src/tradepipe
	lint-imports

mlflow-ui: $(STAMP)     ## the MLflow UI on the local tracking store
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

airflow: $(STAMP)       ## Airflow 3 (api-server, scheduler, dag-processor, triggerer) with the UI on 127.0.0.1:8080
	python -m tradepipe.orchestration.stack --project . --home .airflow --port 8080

clean:
	rm -rf data models reports metrics plots mlflow.db mlartifacts .dvc/cache .dvc/tmp
