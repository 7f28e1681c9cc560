# chainrule: `make run` serves on :8000, `make test` runs the whole suite on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test bench lint docs stack-native clean

$(RUN_STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . -e ./client
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench,examples]'
	touch $@

run: $(RUN_STAMP)
	./scripts/install-system-deps graphviz
	$(BIN)/chainrule serve

test: $(TEST_STAMP)
	./scripts/install-system-deps
	$(BIN)/ruff check .
	$(BIN)/python scripts/render-op-catalog --check README.md
	$(BIN)/python -m pytest

bench: $(TEST_STAMP)
	./scripts/install-system-deps
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.wire
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.replicas
	$(BIN)/python -m bench.batch
	$(BIN)/python -m bench.cnn
	$(BIN)/python -m bench.graphs
	$(BIN)/python -m bench.optimize

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

docs: $(RUN_STAMP)
	$(BIN)/python scripts/render-op-catalog README.md

# e.g. make stack-native ARGS='--replicas 3 --redis-cluster'
stack-native: $(TEST_STAMP)
	./scripts/install-system-deps redis-server nginx
	$(BIN)/python scripts/stack-native $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
