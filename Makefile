# The two commands a new user runs. Each creates .venv on first use and installs into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install lock newest clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Every package at the exact version in requirements/lock.txt (torch 2.13.0's CPU build installs
# from local disk on the project's machines), then nas itself without letting pip resolve anything:
# a new release on the registry cannot change what a fresh machine gets. The lock holds the test
# extras (pytest, ruff, triton for the kernels' CPU interpreter, hypothesis, matplotlib, pandas),
# ray and postgres (the suites that start a Ray cluster and talk to a PostgreSQL server).
$(VENV)/.installed: $(BIN)/activate pyproject.toml requirements/lock.txt
	$(BIN)/pip install -q -r requirements/lock.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
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

# Regenerate requirements/lock.txt from pyproject.toml's ranges (uv, pinned in the script).
lock:
	scripts/lock.sh

# The newest releases inside pyproject.toml's ranges, in a separate venv, against the tests that
# touch those libraries' APIs: a breaking release is seen here before a user meets it.
newest:
	scripts/newest.sh

clean:
	rm -rf $(VENV) nas.db nas.db-wal nas.db-shm
