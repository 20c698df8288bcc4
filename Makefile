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
	# test: pytest, ruff, triton (kernels in its CPU interpreter), hypothesis, matplotlib, pandas;
	# ray and postgres: the suites that start a Ray cluster and talk to a PostgreSQL server
	$(BIN)/pip install -q -e '.[test,ray,postgres]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/nas search examples/quickstart.yaml --budget 6m --storage sqlite:///nas.db

lint: install
	$(BIN)/ruff check nas tests benchmarks

# Everything a CPU machine can run: Ray tests start their own cluster on 127.0.0.1; PostgreSQL
# tests need NAS_TEST_POSTGRES_URL (scripts/with_postgres.sh provides a throwaway server, as
# .ci/run does) and skip, saying so, without it.
test: lint
	$(BIN)/python -m pytest -q -m "not gpu" -rs

clean:
	rm -rf $(VENV) nas.db nas.db-wal nas.db-shm
