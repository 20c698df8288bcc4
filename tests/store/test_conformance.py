"""The store's contract, the same on every backend: SQLite file, SQLite in memory, and
PostgreSQL when NAS_TEST_POSTGRES_URL names a server (marker `postgres`; run the suite against a
throwaway server with `scripts/with_postgres.sh pytest -m postgres tests/store`).

Each PostgreSQL test gets a fresh database, created and dropped around it."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import nas
from nas.errors import NasError, StoreError
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.store import COMPLETE, DUPLICATE, FAIL, RUNNING, Store, migrate
from nas.store.artifacts import ArtifactFile, digest, weights_path
from nas.store.store import INFEASIBLE

OBJECTIVES = [{"name": "accuracy", "direction": "maximize"},
              {"name": "latency_ms", "direction": "minimize"}]
POSTGRES = os.environ.get("NAS_TEST_POSTGRES_URL")


@pytest.fixture
def postgres_url():
    """A fresh, empty database on the server at NAS_TEST_POSTGRES_URL; dropped afterwards."""
    if not POSTGRES:
        pytest.skip("NAS_TEST_POSTGRES_URL is not set (run under scripts/with_postgres.sh)")
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite-file", "sqlite-memory",
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_ARTIFACTS", str(tmp_path / "artifacts"))
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path}/nas.db"
    if request.param == "sqlite-memory":
        return "sqlite://"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(url):
    s = Store(url)
    yield s
    s.close()


def spec(d_model=32, lr=1e-3) -> ArchSpec:
    layer = LayerSpec(ModuleSpec.make("short_conv", kernel_size=4),
                      ModuleSpec.make("mlp", expansion=2, activation="gelu"))
    return ArchSpec(d_model=d_model, vocab_size=16, layers=(layer,), training={"lr": lr})


def new_run(store, name=None):
    return store.create_run(
        name=name, base_name="space", space_path="s.yaml", space_text="name: space ✓",
        space_hash="abc", objectives=OBJECTIVES, strategy="nsga2", seed=0, budget="5trials",
        budget_unit="trials", budget_amount=5, versions={"nas": "0", "torch": "2"}, host="h",
    )


def finish(store, run, number, acc, lat, seconds=2.0, weights: bytes | None = None):
    store.start_trial(run.id, number, spec(d_model=16 * (number + 1)), worker="w")
    artifact = None
    if weights is not None:
        relative = weights_path(store.run_folder(run.name), number)
        path = store.artifacts_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(weights)
        artifact = ArtifactFile(relative, *digest(path))
    store.complete_trial(run.id, number, values={"accuracy": acc, "latency_ms": lat},
                         metrics={"accuracy": acc, "latency_ms": lat, "params": 1000 + number,
                                  "latency_ms_spread": 0.01},
                         curve=[(10, "train_loss", 2.0), (20, "train_loss", 1.5)],
                         device="cpu", device_seconds=seconds, wall_seconds=seconds,
                         artifact=artifact)


def test_schema_is_versioned_beside_optunas(store):
    with store.engine.connect() as c:
        assert migrate.current_revision(c) == migrate.HEAD
    Store(store.url).close() if store.url != "sqlite://" else None  # reopening is a no-op


def test_runs_trials_front_ledger(store):
    run = new_run(store)
    assert new_run(store).name == "space-2"
    with pytest.raises(StoreError, match="already exists"):
        new_run(store, name="space-1")
    finish(store, run, 0, 0.9, 5.0)
    finish(store, run, 1, 0.5, 1.0)
    finish(store, run, 2, 0.4, 2.0)  # dominated by trial 1
    store.start_trial(run.id, 3, spec(), worker="w")
    store.fail_trial(run.id, 3, error="ValueError: boom ✗", device_seconds=1.0, wall_seconds=1.0)
    store.start_trial(run.id, 4, spec(d_model=64), worker="w")
    store.add_infeasible(run.id, 5, spec(d_model=128), "params <= 2e6: params = 3.1M", 3_100_000)
    store.add_duplicate(run.id, 6, spec(d_model=16), store.trial(run.name, 0))

    trials = store.trials(run.name)
    assert [t.state for t in trials] == [COMPLETE, COMPLETE, COMPLETE, FAIL, RUNNING, INFEASIBLE,
                                         DUPLICATE]
    assert [t.number for t in store.pareto(run.name)] == [0, 1]
    t0 = store.trial(run.name, 0)
    assert t0.values == {"accuracy": 0.9, "latency_ms": 5.0} and t0.params == 1000
    assert t0.arch == spec(d_model=16) and t0.timings["latency_ms"] == 5.0
    assert store.curve(run.name, 0) == [(10, "train_loss", 2.0), (20, "train_loss", 1.5)]
    assert store.trial(run.name, 3).error == "ValueError: boom ✗"
    assert store.trial(run.name, 6).duplicate_of == 0
    assert store.ledger(run.id) == (7.0, 7.0, 4)
    summary = store.run(run.name)
    assert (summary.trials_complete, summary.trials_total, summary.device_seconds) == (3, 7, 7.0)
    assert summary.space_text == "name: space ✓"
    assert store.find_complete(run.id, spec(d_model=32).config_hash).number == 1
    time.sleep(0.05)
    store.beat(run.id)  # the old driver's last sign of life, after trial 4 started
    assert store.reopen_run(run.id, driver_pid=1, host="h2") == [4]  # a lost RUNNING trial
    lost = store.trial(run.name, 4)
    assert lost.state == FAIL and 0.04 < lost.device_seconds < 60  # charged until the beat
    assert store.ledger(run.id) == (7.0 + lost.device_seconds, 7.0 + lost.device_seconds, 5)
    assert store.ledger_entries(run.name)[-1].note == "lost"
    store.finish_run(run.id, "finished", "done", elapsed_seconds=12.5)
    assert store.run(run.id).status == "finished" and store.run(run.id).elapsed_seconds == 12.5
    remeasured = {"accuracy": 0.9, "latency_ms": 7.5}
    store.record_remeasure(run.id, {0: (remeasured, {**t0.metrics, **remeasured})}, charged=0,
                           device_seconds=1.0, wall_seconds=1.0)
    duplicate = store.trial(run.name, 6)  # repeats trial 0: mirrors its re-measured values
    assert duplicate.values == remeasured and duplicate.metrics["latency_ms"] == 7.5


def test_weights_policies_and_delete(store):
    run = new_run(store)
    finish(store, run, 0, 0.5, 1.0, weights=b"zero")
    finish(store, run, 1, 0.9, 2.0, weights=b"one")
    finish(store, run, 2, 0.4, 3.0, weights=b"two")  # dominated
    folder = store.artifacts_root / store.run_folder(run.name)
    stray = folder / "7.safetensors"  # a crashed worker's file
    stray.write_bytes(b"stray")
    assert [a.number for a in store.artifacts(run.name)] == [0, 1, 2]
    assert store.prune_artifacts(run.id, "all") == []
    removed = store.prune_artifacts(run.id, "front")
    assert [p.name for p in removed] == ["2.safetensors"] and stray.exists()
    kept = store.artifacts(run.name)
    assert [a.number for a in kept] == [0, 1]
    assert kept[1].bytes == 3 and kept[1].file.read_bytes() == b"one"
    assert store.artifact(run.name, 2) is None
    assert store.prune_artifacts(run.id, "front", sweep=True) == [stray]
    finish(store, run, 3, 0.95, 0.5, weights=b"three")  # dominates 0 and 1
    store.prune_artifacts(run.id, "front")
    assert [a.number for a in store.artifacts(run.name)] == [3]
    assert sorted(p.name for p in folder.iterdir()) == ["3.safetensors"]
    with pytest.raises(StoreError, match="unknown keep_weights"):
        store.prune_artifacts(run.id, "some")
    store.prune_artifacts(run.id, "none")
    assert store.artifacts(run.name) == [] and not folder.exists()

    finish(store, run, 4, 0.99, 0.1, weights=b"four")
    store.delete_run(run.name)
    assert store.runs() == [] and not folder.exists()


def test_databases_sharing_an_artifacts_root_keep_their_runs_apart(store, tmp_path):
    """Run names restart at NAME-1 in every database: a run of another database in the same
    root, of the same name, neither overwrites nor sweeps this one's files."""
    other = Store(f"sqlite:///{tmp_path}/other.db")
    try:
        mine, theirs = new_run(store), new_run(other)
        assert mine.name == theirs.name and store.artifacts_root == other.artifacts_root
        finish(store, mine, 0, 0.5, 1.0, weights=b"mine")
        finish(other, theirs, 0, 0.9, 1.0, weights=b"theirs")
        other.prune_artifacts(theirs.id, "front", sweep=True)
        other.delete_run(theirs.name)
        assert store.artifact(mine.name, 0).file.read_bytes() == b"mine"
    finally:
        other.close()


def test_python_api(store, monkeypatch):
    run = new_run(store)
    finish(store, run, 0, 0.9, 5.0)
    finish(store, run, 1, 0.5, 1.0)
    store.start_trial(run.id, 2, spec(), worker="w")
    store.fail_trial(run.id, 2, error="boom", device_seconds=1.0, wall_seconds=1.0)
    if store.url == "sqlite://":  # an in-memory database is only this Store's
        from nas.store.api import Results
        results = Results(store)
    else:
        results = nas.open_store(store.url)
    handle = results.run(run.name)
    assert [r.name for r in results.runs()] == ["space-1"]
    assert [t.number for t in handle.pareto()] == [0, 1]
    assert [t.number for t in handle.trials("fail")] == [2]
    trial = handle.trial(1)
    with pytest.raises(AttributeError):
        trial.number = 5  # frozen
    assert trial.arch.d_model == 32 and trial.values["latency_ms"] == 1.0
    pd = pytest.importorskip("pandas")
    frame = handle.to_pandas()
    assert list(frame.index) == [0, 1, 2]
    assert frame.loc[1, "accuracy"] == 0.5 and bool(frame.loc[0, "pareto"])
    assert pd.isna(frame.loc[2, "accuracy"]) and frame.loc[2, "error"] == "boom"
    assert list(frame.columns[:7]) == ["state", "short_form", "d_model", "n_layers", "params",
                                       "accuracy", "latency_ms"]
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    with pytest.raises(NasError, match="pandas is not installed"):
        handle.to_pandas()


def test_reading_never_creates_a_database(tmp_path):
    with pytest.raises(StoreError, match="no database"):
        nas.open_store(f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists()
