"""The store against a real SQLite database: writes, reads, front, ledger, crash safety."""

import os
import sqlite3

import pytest
from sqlalchemy import event

from nas.errors import StoreError
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.store import COMPLETE, DUPLICATE, FAIL, RUNNING, Store

OBJECTIVES = [{"name": "accuracy", "direction": "maximize"},
              {"name": "latency_ms", "direction": "minimize"}]


def spec(d_model=32, lr=1e-3) -> ArchSpec:
    layer = LayerSpec(ModuleSpec.make("short_conv", kernel_size=4),
                      ModuleSpec.make("mlp", expansion=2, activation="gelu"))
    return ArchSpec(d_model=d_model, vocab_size=16, layers=(layer,), training={"lr": lr})


def new_run(store, name=None):
    return store.create_run(
        name=name, base_name="space", space_path="s.yaml", space_text="name: space",
        space_hash="abc", objectives=OBJECTIVES, strategy="nsga2", seed=0, budget="5trials",
        budget_unit="trials", budget_amount=5, versions={"nas": "0"}, host="h",
    )


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/sub/dir/nas.db")
    yield s
    s.close()


def finish(store, run, number, acc, lat, seconds=2.0):
    store.start_trial(run.id, number, spec(d_model=16 * (number + 1)), worker="w")
    store.complete_trial(run.id, number, values={"accuracy": acc, "latency_ms": lat},
                         metrics={"accuracy": acc, "latency_ms": lat, "params": 1000 + number},
                         curve=[(10, "train_loss", 2.0), (20, "train_loss", 1.5)],
                         device="cpu", device_seconds=seconds, wall_seconds=seconds)


def test_runs_are_named_and_listed(store):
    a, b = new_run(store), new_run(store)
    assert (a.name, b.name) == ("space-1", "space-2")
    assert new_run(store, name="mine").name == "mine"
    with pytest.raises(StoreError, match="already exists"):
        new_run(store, name="mine")
    assert [r.name for r in store.runs()] == ["space-1", "space-2", "mine"]
    assert store.run("space-2").id == b.id
    assert store.run(str(b.id)).name == "space-2"
    with pytest.raises(StoreError, match="recent runs: mine"):
        store.run("nope")


@pytest.mark.parametrize("name", ["../..", "..", "a/b", "", "-1", ".hidden", "x" * 101])
def test_run_names_that_are_not_plain_folder_names_are_refused(store, name):
    with pytest.raises(StoreError, match="run name"):
        new_run(store, name=name)


def test_files_that_are_not_nas_databases_are_one_line_errors(tmp_path):
    garbage, empty, foreign = tmp_path / "garbage.db", tmp_path / "empty.db", tmp_path / "o.db"
    garbage.write_bytes(bytes(range(256)) * 20)
    empty.write_bytes(b"")
    other = sqlite3.connect(foreign)
    other.execute("create table foo(x)")
    other.commit()
    other.close()
    for create in (True, False):
        with pytest.raises(StoreError, match="file is not a database"):
            Store(f"sqlite:///{garbage}", create=create)
    for path in (empty, foreign):  # a query adds no tables to them
        with pytest.raises(StoreError, match="not a nas database"):
            Store(f"sqlite:///{path}", create=False)
    tables = sqlite3.connect(foreign).execute("select name from sqlite_master").fetchall()
    assert tables == [("foo",)]


def test_the_orphan_sweep_never_leaves_the_artifacts_root(tmp_path):
    from nas.store.artifacts import sweep_orphans

    root = tmp_path / "nas-artifacts"
    root.mkdir()
    (tmp_path / "canary.txt").write_text("keep me")
    assert sweep_orphans(root, "..", kept=set()) == []
    assert sweep_orphans(root, ".", kept=set()) == []
    assert (tmp_path / "canary.txt").exists() and root.exists()


def test_two_drivers_starting_at_once_get_different_names(store):
    """The other driver inserts `space-1` after this one read the taken names but before it
    wrote: this one's insert fails on the unique name and it takes `space-2`."""
    other = Store(store.url)
    raced = []

    @event.listens_for(store._sessions, "before_flush")
    def other_driver_first(session, context, instances):
        if not raced:
            raced.append(new_run(other).name)

    try:
        assert new_run(store).name == "space-2"
        assert raced == ["space-1"]
    finally:
        event.remove(store._sessions, "before_flush", other_driver_first)
        other.close()
    with pytest.raises(StoreError, match="already exists"):
        new_run(store, name="space-2")


def test_trials_front_ledger(store):
    run = new_run(store)
    finish(store, run, 0, 0.9, 5.0)
    finish(store, run, 1, 0.5, 1.0)
    finish(store, run, 2, 0.4, 2.0)  # dominated by trial 1
    store.start_trial(run.id, 3, spec(), worker="w")
    store.fail_trial(run.id, 3, error="ValueError: boom", device_seconds=1.0, wall_seconds=1.0)
    store.start_trial(run.id, 4, spec(d_model=64), worker="w")

    trials = store.trials(run.name)
    assert [t.state for t in trials] == [COMPLETE, COMPLETE, COMPLETE, FAIL, RUNNING]
    assert [t.number for t in store.pareto(run.name)] == [0, 1]
    t0 = store.trial(run.name, 0)
    assert t0.values == {"accuracy": 0.9, "latency_ms": 5.0} and t0.params == 1000
    assert t0.spec["d_model"] == 16 and t0.short_form == "C"
    assert store.curve(run.name, 0) == [(10, "train_loss", 2.0), (20, "train_loss", 1.5)]
    assert store.trial(run.name, 3).error == "ValueError: boom"
    assert store.ledger(run.id) == (7.0, 7.0, 4)
    summary = store.run(run.name)
    assert (summary.trials_complete, summary.trials_total, summary.device_seconds) == (3, 5, 7.0)

    # a better trial knocks others off the front
    finish(store, run, 5, 0.95, 0.5)
    assert [t.number for t in store.pareto(run.name)] == [5]

    store.finish_run(run.id, "interrupted", "Ctrl-C")
    assert store.trial(run.name, 4).state == FAIL  # nothing is left RUNNING
    assert store.run(run.name).status == "interrupted"


def test_duplicates_are_answered_from_the_store(store):
    run = new_run(store)
    finish(store, run, 0, 0.9, 5.0)
    original = store.find_complete(run.id, spec(d_model=16).config_hash)
    assert original is not None and original.number == 0
    assert store.find_complete(run.id, spec(d_model=16, lr=9e-3).config_hash) is None
    store.add_duplicate(run.id, 1, spec(d_model=16), original)
    dup = store.trial(run.name, 1)
    assert dup.state == DUPLICATE and dup.duplicate_of == 0 and dup.values == original.values
    assert store.ledger(run.id)[2] == 1  # duplicates cost nothing


def test_finished_trials_survive_a_crashed_writer(tmp_path):
    url = f"sqlite:///{tmp_path}/nas.db"
    store = Store(url)
    run = new_run(store)
    finish(store, run, 0, 0.9, 5.0)
    # a writer dies in the middle of a transaction: nothing of it may land
    with pytest.raises(RuntimeError), store.transaction() as s:
        from nas.store.models import TrialRow
        s.add(TrialRow(run_id=run.id, number=1, state=COMPLETE, spec_json="{}", arch_hash="x",
                       config_hash="x", short_form="C", d_model=1, n_layers=1))
        s.flush()
        raise RuntimeError("killed")
    store.close()
    reopened = Store(url)
    assert [t.number for t in reopened.trials(run.name)] == [0]
    # and the file is a healthy SQLite database in WAL mode
    with sqlite3.connect(f"{tmp_path}/nas.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bad_url_is_a_store_error():
    with pytest.raises(StoreError, match="cannot parse storage URL"):
        Store("not a url")


def test_a_search_records_each_architecture_once_with_its_costs(tmp_path, tiny_space_text):
    from nas.blocks import build_model
    from nas.budget import parse_budget
    from nas.orchestrator.progress import NullReporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import loads

    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("2trials"), storage=url, threads=1)
    outcome = run_search(loads(tiny_space_text, "space.yaml"), options, NullReporter())
    store = Store(url)
    for trial in store.trials(outcome.run_name):
        stored = store.architecture(trial.arch_hash)
        model = build_model(trial.arch)
        assert stored["params"] == sum(p.numel() for p in model.parameters())
        assert stored["seq_len"] == 24  # the task's
        assert stored["flops_per_token"] == model.flops_per_token(24)
        assert stored["state_bytes"] == model.state_bytes(24)


def test_a_steadier_timing_replaces_a_noisy_one_in_the_latency_cache(store):
    row = {"fingerprint_hash": "f", "phase": "prefill", "batch": 1, "seq_len": 8}
    store.record_latency("a", {"device": "cpu"}, [{**row, "median_ms": 4.2, "spread": 1.15,
                                                   "repeats": 50}])
    store.record_latency("a", {"device": "cpu"}, [{**row, "median_ms": 0.95, "spread": 0.01,
                                                   "repeats": 9}])
    store.record_latency("a", {"device": "cpu"}, [{**row, "median_ms": 3.0, "spread": 0.5,
                                                   "repeats": 9}])  # noisier: ignored
    [cached] = store.cached_latency("a")
    assert (cached["median_ms"], cached["spread"]) == (0.95, 0.01)


def test_a_contended_timing_never_wins_over_an_uncontended_one_in_the_latency_cache(store):
    row = {"fingerprint_hash": "f", "phase": "decode", "batch": 1, "seq_len": 8, "repeats": 9}
    store.record_latency("a", {"device": "cpu"}, [{**row, "median_ms": 47.87, "spread": 0.02,
                                                   "contended": True}])
    [cached] = store.cached_latency("a")
    assert cached["contended"] and cached["fingerprint"] == {"device": "cpu"}
    # an uncontended timing replaces it although its spread is larger ...
    store.record_latency("a", {"device": "cpu"}, [{**row, "median_ms": 1.04, "spread": 0.2,
                                                   "contended": False}])
    # ... and a steadier contended one does not replace that
    store.record_latency("a", {"device": "cpu"}, [{**row, "median_ms": 30.0, "spread": 0.001,
                                                   "contended": True}])
    [cached] = store.cached_latency("a")
    assert (cached["median_ms"], cached["contended"]) == (1.04, False)
    assert cached["fingerprint"] == {"device": "cpu"}


@pytest.mark.parametrize("database, words", [
    ("/dev/zero", "it is a device"), ("/dev/full", "it is a device"),
    ("FOLDER", "it is a folder"), ("LONG", "File name too long"),
    ("FILE/nas.db", "Not a directory"),
])
def test_a_path_that_cannot_be_a_database_is_one_line_and_creates_nothing(
        tmp_path, database, words):
    (tmp_path / "file").write_text("x")
    path = (database.replace("FOLDER", str(tmp_path)).replace("FILE", str(tmp_path / "file"))
            .replace("LONG", str(tmp_path / ("a" * 5000 + ".db"))))
    before = sorted(tmp_path.iterdir())
    for create in (True, False):
        with pytest.raises(StoreError, match=words) as info:
            Store(f"sqlite:///{path}", create=create)
        assert "\n" not in str(info.value) and "fix:" in str(info.value)
        assert len(str(info.value)) < 500
    assert not os.path.lexists(f"{path}.migrate-lock") and sorted(tmp_path.iterdir()) == before


def test_the_front_kept_on_each_completion_is_the_front_of_all(store):
    """complete_trial updates the front against its members only; after every completion the
    flags equal a full Pareto computation over all completed trials (ties included)."""
    import random

    from nas.strategies.pareto import pareto_mask

    run = new_run(store)
    rng = random.Random(7)
    points = []
    for number in range(60):
        acc, lat = rng.choice([0.5, 0.6, 0.7, 0.8, 0.9]), rng.choice([1.0, 2.0, 3.0, 4.0])
        finish(store, run, number, acc, lat)
        points.append((acc, lat))
        flags = [t.pareto for t in store.trials(run.id)]
        assert flags == pareto_mask(points, ["maximize", "minimize"]), number
    assert [t.number for t in store.pareto(run.id)] == [
        n for n, on in enumerate(pareto_mask(points, ["maximize", "minimize"])) if on]
