# chainrule: `make run` serves on :8000, `make test` runs the whole suite on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint docs stack-native clean

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]' -e ./client
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/chainrule serve

test: $(STAMP)
	./scripts/install-system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.wire
	$(BIN)/python -m bench.http

lint: $(STAMP)
	$(BIN)/ruff check .

docs: $(STAMP)
	$(BIN)/python scripts/render-op-catalog README.md

stack-native: $(STAMP)
	./scripts/stack-native

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
