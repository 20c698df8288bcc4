"""The search loop in-process: budgets, failed trials, killed workers, reproducibility."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from nas.budget import parse_budget
from nas.evaluate.trial import TrialRequest
from nas.orchestrator.executor import LocalExecutor
from nas.orchestrator.executor_base import WorkerLost
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, DUPLICATE, FAIL, Store


def search(text, tmp_path, budget, **kw):
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget(budget), storage=url, threads=1, **kw)
    outcome = run_search(loads(text, "space.yaml"), options, NullReporter())
    return outcome, Store(url)


def test_wall_clock_budget_stops_starting_trials(tmp_path, tiny_space_text):
    start = time.monotonic()
    outcome, store = search(tiny_space_text, tmp_path, "1s")
    elapsed = time.monotonic() - start
    trials = store.trials(outcome.run_name)
    # the first trial starts at once and is stopped when the second is up (see
    # test_budget_holds.py): no second trial starts
    assert [(t.state, t.failure) for t in trials] == [(FAIL, "cancelled")]
    assert outcome.status == "finished" and "budget spent" in outcome.message
    assert elapsed < 120
    device_seconds, _, charged = store.ledger(store.run(outcome.run_name).id)
    assert charged == 1 and device_seconds == pytest.approx(trials[0].device_seconds)


def test_device_hour_budget_is_charged_from_the_ledger(tmp_path, tiny_space_text):
    outcome, store = search(tiny_space_text, tmp_path, "0.0001cpuh")  # 0.36 device-seconds
    run = store.run(outcome.run_name)
    assert run.trials_total == 1 and run.device_seconds > 0.36


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path, tiny_space_text):
    diverging = tiny_space_text.replace("lr: {loguniform: [1.0e-3, 1.0e-2]}", "lr: 1.0e+6")
    outcome, store = search(diverging, tmp_path, "2trials")
    trials = store.trials(outcome.run_name)
    assert [t.state for t in trials] == [FAIL, FAIL]
    assert all("TrialDiverged" in t.error for t in trials)
    assert store.ledger(store.run(outcome.run_name).id)[2] == 2  # failures are charged
    assert outcome.front == [] and outcome.status == "finished"


ONE_CONFIG = """\
name: one
task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
model: {d_model: 16, n_layers: 1, token_mixers: {short_conv: {kernel_size: 3}}}
training: {steps: 40, batch_size: 4, lr: 3.0e-3}
objectives: [{name: accuracy}]
"""


def test_a_config_in_training_is_never_trained_again(tmp_path):
    """Two workers, one possible config: while trial 0 trains, every new sample of the same
    config is a DUPLICATE of it (was: trained again in parallel), later showing its values."""
    outcome, store = search(ONE_CONFIG, tmp_path, "3trials", workers=2)
    trials = store.trials(outcome.run_name)
    assert [t.state for t in trials].count(COMPLETE) == 1 and "exhausted" in outcome.message
    assert all(t.state == DUPLICATE and t.duplicate_of == 0 for t in trials[1:])
    assert all(t.values == trials[0].values for t in trials[1:])  # mirrored on completion
    assert store.ledger(store.run(outcome.run_name).id)[2] == 1  # one trial charged


GRID = """\
name: grid
task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
model:
  d_model: 16
  n_layers: 1
  token_mixers: {short_conv: {kernel_size: {choice: [2, 3]}}}
  channel_mixer: {kind: {choice: [mlp, swiglu]}, expansion: 2}
training: {steps: 4, batch_size: 4, lr: 3.0e-3}
objectives: [{name: accuracy}]
search: {strategy: grid, seed: 3}
"""


def test_the_grid_trains_every_configuration_once_then_ends(tmp_path):
    outcome, store = search(GRID, tmp_path, "50trials", workers=2)
    trials = store.trials(outcome.run_name)
    assert [t.state for t in trials] == [COMPLETE] * 4  # no duplicate recorded: none asked
    assert len({t.config_hash for t in trials}) == 4
    assert outcome.status == "finished"
    assert outcome.message == ("search space exhausted: every one of the space's 4 "
                               "configurations has been proposed")


def test_same_seed_same_candidates(tmp_path, tiny_space_text):
    a, store_a = search(tiny_space_text, tmp_path / "a", "3trials", seed=7)
    b, store_b = search(tiny_space_text, tmp_path / "b", "3trials", seed=7)
    hashes = [[t.config_hash for t in s.trials(o.run_name)] for o, s in ((a, store_a),
                                                                          (b, store_b))]
    assert hashes[0] == hashes[1]
    values = [[t.values for t in s.trials(o.run_name)] for o, s in ((a, store_a), (b, store_b))]
    accuracies = [[v["accuracy"] for v in run if v] for run in values]
    assert accuracies[0] == accuracies[1]  # training is deterministic per seed


def test_killed_worker_fails_its_trial_and_the_pool_recovers(tiny_space_text):
    space = loads(tiny_space_text)
    spec = space.assemble({
        "model.d_model": 32, "model.n_layers": 2, "model.norm": "rmsnorm",
        "model.hybrid.full_attention_ratio": 0.5, "model.hybrid.placement": "last",
        "model.hybrid.other": "short_conv", "model.channel_mixer.kind": "mlp",
        "training.steps": 2000, "training.batch_size": 8, "training.lr": 1e-3,
    })
    request = TrialRequest(spec_json=spec.to_json(), task=space.task, num_threads=1)
    executor = LocalExecutor(workers=1, threads=1)
    try:
        future = executor.submit(request)
        deadline = time.monotonic() + 60
        while not multiprocessing.active_children() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # let it get into training
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(WorkerLost):
            future.result(timeout=60)
        executor.heal()
        quick = TrialRequest(spec_json=spec.to_json().replace('"steps":2000', '"steps":5'),
                             task=space.task, num_threads=1)
        output = executor.submit(quick).result(timeout=120)
        assert output.result.metrics["params"] > 0
    finally:
        executor.shutdown(cancel=True)


def test_database_failure_stops_the_search_and_keeps_finished_trials(
        tmp_path, tiny_space_text, monkeypatch):
    """Disk full (or the server gone) mid-search: one clear StoreError, earlier trials intact."""
    from sqlalchemy.exc import OperationalError

    from nas.errors import StoreError

    real = Store.complete_trial
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "complete_trial", flaky)
    with pytest.raises(StoreError, match="disk is full"):
        search(tiny_space_text, tmp_path, "3trials")
    monkeypatch.setattr(Store, "complete_trial", real)
    store = Store(f"sqlite:///{tmp_path}/nas.db")
    run = store.runs()[0]
    assert run.status == "failed"
    assert [t.state for t in store.trials(run.name)] == [COMPLETE, FAIL]


def test_optunas_storage_failing_is_the_same_clear_error(tmp_path, tiny_space_text, monkeypatch):
    """Optuna wraps a full disk in StorageInternalError (from ask, suggest or tell): one
    StoreError with the database's own words, not a traceback; creating a run on a database
    that cannot be written is the same one line."""
    import optuna
    from sqlalchemy.exc import OperationalError

    from nas.errors import StoreError

    def full(self, *args, **kwargs):
        try:
            raise OperationalError("UPDATE", {}, Exception("database or disk is full"))
        except OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("commit failed") from exc

    monkeypatch.setattr(optuna.study.Study, "tell", full)
    with pytest.raises(StoreError, match="cannot write to .*database or disk is full"):
        search(tiny_space_text, tmp_path, "2trials")
    monkeypatch.setattr(Store, "create_run", full)
    with pytest.raises(StoreError, match="cannot write to .*database or disk is full"):
        search(tiny_space_text, tmp_path / "other", "2trials")


@pytest.mark.parametrize("option", [{"workers": 100_000}, {"threads": 10**6}])
def test_more_workers_or_threads_than_the_machine_can_use_are_refused_before_the_run(
        tmp_path, tiny_space_text, option):
    """--workers 100000 once started 100,000 worker processes (each importing torch) until
    memory ran out: it is one line before any run or process exists."""
    from nas.errors import NasError

    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("1trials"), storage=url, **option)
    before = len(multiprocessing.active_children())
    with pytest.raises(NasError, match="too many.*fix: pass") as info:
        run_search(loads(tiny_space_text, "space.yaml"), options, NullReporter())
    assert "\n" not in str(info.value)
    assert len(multiprocessing.active_children()) == before
    assert not (tmp_path / "nas.db").exists() or Store(url).runs() == []
