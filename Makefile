# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test lint typecheck pytest bench k8s-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

## Start BitBot on the embedded default (SQLite + in-process Redis) at http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/bitbot run

## Lint, type-check and run the whole test suite
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

## Benchmarks: each prints its figures (needs PostgreSQL, Redis and wrk, which it installs)
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.intake
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.b24_batching

## Render every k8s overlay and validate it offline (kubectl kustomize, schemas, checkov, hadolint)
k8s-check:
	bash scripts/validate-k8s.sh

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
