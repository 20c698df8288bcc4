#!/usr/bin/env bash
# Install the NEWEST releases that pyproject.toml's ranges admit into .venv-newest (never the
# lock), list where they differ from requirements/lock.txt, and run the tests that exercise those
# libraries' APIs (Optuna samplers and storage, Ray Tune, SQLAlchemy/alembic, pydantic, typer,
# PyYAML). A release that breaks nas fails here, in CI, before a user installs it.
#
#   scripts/newest.sh                 # the default selection below
#   scripts/newest.sh tests/ray -x    # any pytest arguments instead
#
# torch stays at the lock's version: newer builds are CUDA wheels of several GB on these machines.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-newest
PYTHON="${PYTHON:-python3}"
TORCH="$(sed -n 's/^torch==\([^ ]*\).*/\1/p' requirements/lock.txt)"

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q "torch==$TORCH" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/pip" install -q --upgrade --upgrade-strategy eager -e '.[test,ray,postgres]' \
    2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/pip" check

echo "newest releases that differ from requirements/lock.txt:"
"$VENV/bin/pip" list --format=freeze 2>/dev/null | grep -v '^-e\|^nas==\|^pip==' \
    | sed 's/+[a-z0-9.]*$//' | sort > "$VENV/freeze.txt"
sed -n 's/^\([A-Za-z0-9_.-]*\)==\([^ ;]*\).*/\1==\2/p' requirements/lock.txt \
    | tr 'A-Z_' 'a-z-' | sort > "$VENV/lock.txt"
tr 'A-Z_' 'a-z-' < "$VENV/freeze.txt" | sort | comm -23 - "$VENV/lock.txt" | sed 's/^/  /' || true

if [ "$#" -eq 0 ]; then
    set -- -m "not gpu and not slow" \
        tests/ray/test_tune.py tests/strategies tests/store tests/searchspace/test_load.py \
        tests/cli/test_cli.py tests/cli/test_queries.py tests/orchestrator/test_search.py \
        tests/orchestrator/test_resume.py
fi
exec "$VENV/bin/python" -m pytest -q -rs "$@"
