# The two commands a new user runs. Each creates .venv on first use and installs into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a CPU build that installs from local disk on the project's machines
	$(BIN)/pip install -q torch==2.13.0

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/nas search examples/quickstart.yaml --budget 6m --storage sqlite:///nas.db

lint: install
	$(BIN)/ruff check nas tests benchmarks

test: lint
	$(BIN)/python -m pytest -q -m "not gpu and not ray and not postgres"

clean:
	rm -rf $(VENV) nas.db nas.db-wal nas.db-shm
