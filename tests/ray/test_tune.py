"""nas inside Ray Tune: the trainable's rungs, the searcher and scheduler in a real Tuner, and
the example script against the test cluster; the experiment recorded in a nas database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nas.errors import StoreError
from nas.evaluate.trial import TrialRequest, run_trial
from nas.integrations.tune import (
    MultiObjectiveASHAScheduler,
    NasSearcher,
    nas_trainable,
    run_by_rungs,
    rungs_for,
)
from nas.integrations.tune_store import NasStoreCallback
from nas.orchestrator.fidelity import Fidelity
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, resume_search
from nas.searchspace import load, loads
from nas.store import COMPLETE, PRUNED, Store
from tests.conftest import python_task_space

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]


def test_rungs_end_at_the_specs_steps():
    assert rungs_for(20, None) == [20]
    assert rungs_for(20, Fidelity(5, 20, 2)) == [5, 10, 20]
    assert rungs_for(12, Fidelity(5, 20, 2)) == [5, 10, 12]


def test_training_by_rungs_ends_where_one_run_ends(tiny_space_text):
    space = loads(tiny_space_text)
    spec = space.sample(optuna.create_study().ask())
    request = TrialRequest(spec_json=spec.to_json(), task=space.task, seed=1, num_threads=1,
                           eval_examples=64)
    reports = list(run_by_rungs(request, [5, 10, 20]))
    assert [r["steps"] for r in reports] == [5, 10, 20]
    assert [r["nas_final"] for r in reports] == [False, False, True]
    whole = run_trial(request)
    assert reports[-1]["accuracy"] == whole.metrics["accuracy"]
    assert reports[-1]["loss"] == whole.metrics["loss"]


def test_searcher_and_scheduler_in_a_tuner(ray_connected, tiny_space_file, tmp_path):
    from ray import tune

    space = load(tiny_space_file)
    fidelity = Fidelity(5, 20, 2)
    searcher = NasSearcher(space, fidelity=fidelity, eval_examples=64)
    scheduler = MultiObjectiveASHAScheduler(space, fidelity)
    url = f"sqlite:///{tmp_path}/nas.db"
    recorder = NasStoreCallback(searcher, storage=url, name="from-tune")
    tuner = tune.Tuner(
        tune.with_resources(nas_trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=4,
                                    metric="accuracy", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0, callbacks=[recorder]),
        param_space={"team_tag": "recsys"},  # a user's own constant passes through
    )
    results = tuner.fit()
    assert results.num_errors == 0 and len(results) == 4
    finals = [r for r in results if r.metrics["nas_final"]]
    stopped = [r for r in results if not r.metrics["nas_final"]]
    assert finals, "the first trial at every rung is always promoted"
    assert all(r.metrics["steps"] == 20 for r in finals)
    assert all(r.metrics["steps"] in (5, 10) for r in stopped)
    assert scheduler.decisions["stop"] == len(stopped)
    assert scheduler.decisions["done"] == len(finals)
    assert all(r.config["team_tag"] == "recsys" for r in results)
    assert all(r.metrics["latency_ms"] > 0 for r in results)
    states = [t.state for t in searcher.study.trials]
    told = optuna.trial.TrialState
    assert states.count(told.COMPLETE) >= len(finals)
    assert states.count(told.PRUNED) == len(stopped)
    assert not searcher.live  # every trial was told

    # the experiment is a nas run in the database: trials under their Optuna numbers
    store = Store(url)
    run = store.run("from-tune")
    assert run.status == "finished" and run.strategy == space.strategy
    stored = {t.number: t for t in store.trials("from-tune")}
    assert len(stored) == 4 and all(t.device_seconds > 0 for t in stored.values())
    by_number = {r.config["nas"]["number"]: r for r in results}
    for number, result in by_number.items():
        trial = stored[number]
        assert trial.state == (COMPLETE if result.metrics["nas_final"] else PRUNED)
        assert trial.values["accuracy"] == result.metrics["accuracy"]
        assert trial.spec == json.loads(result.config["nas"]["spec"])
    assert store.pareto("from-tune") and all(t.state == COMPLETE for t in store.pareto("from-tune"))
    assert store.curve("from-tune", min(by_number))  # the rungs' values
    with pytest.raises(StoreError, match="no Optuna study"):  # its study lived in memory
        resume_search("from-tune", SearchOptions(budget=None, storage=url), NullReporter())


def test_the_example_runs_a_space_in_a_users_tuner(ray_cluster, tiny_space_file, tmp_path):
    command = [sys.executable, str(ROOT / "examples" / "tune_integration.py"),
               "--space", str(tiny_space_file), "--samples", "3", "--min-steps", "5",
               "--reduction", "2", "--address", ray_cluster.address,
               "--storage-path", str(tmp_path / "tune"),
               "--nas-storage", f"sqlite:///{tmp_path}/nas.db"]
    done = subprocess.run(command, env=ray_cluster.env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(summary["trials"]) == 3
    assert all(t["error"] is None and t["accuracy"] is not None for t in summary["trials"])
    assert any(t["nas_final"] for t in summary["trials"])
    listed = subprocess.run([sys.executable, "-m", "nas", "trials", "tiny-1", "--storage",
                             f"sqlite:///{tmp_path}/nas.db", "--format", "json"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3


def test_scheduler_ignores_results_between_rungs(tiny_space_file):
    scheduler = MultiObjectiveASHAScheduler(tiny_space_file, Fidelity(5, 20, 2))

    class FakeTrial:  # only the id is read
        trial_id = "t1"

    assert scheduler.on_trial_result(None, FakeTrial, {"steps": 7, "accuracy": 1.0,
                                                       "latency_ms": 1.0}) == "CONTINUE"
    assert scheduler.on_trial_result(None, FakeTrial, {"steps": 5}) == "CONTINUE"
    assert scheduler.decisions == {"continue": 0, "stop": 0, "done": 0}


def test_the_searcher_survives_pickling_and_suggests_as_before(tiny_space_file):
    """Tune pickles its searcher (Optuna 5.1's NSGA-II holds a thread lock that plain pickle
    refuses); the copy answers open trials and suggests what the original would."""
    import pickle

    searcher = NasSearcher(load(tiny_space_file), strategy="nsga2", eval_examples=64)
    first = searcher.suggest("t0")
    copy = pickle.loads(pickle.dumps(searcher))
    for each in (searcher, copy):
        each.on_trial_complete("t0", {"accuracy": 0.5, "latency_ms": 1.0, "nas_final": True})
        assert not each.live
    assert [copy.suggest(f"t{i}")["nas"]["spec"] for i in range(1, 4)] == \
        [searcher.suggest(f"t{i}")["nas"]["spec"] for i in range(1, 4)]
    assert first["nas"]["number"] == 0


def test_a_space_that_runs_code_needs_allow_code(tiny_space_file, monkeypatch):
    """No Ray cluster: the searcher and the scheduler refuse a python-task space at
    construction (its one-line SpaceError, nothing imported) unless allow_code; with it each
    trial's config carries the permission, and the trainable's code refuses a request
    without it."""
    from nas.errors import SpaceError

    monkeypatch.delenv("NAS_ALLOW_CODE", raising=False)
    folder = tiny_space_file.parent
    text = tiny_space_file.read_text()
    task = python_task_space(tiny_space_file, "usertask_tune")
    fidelity = Fidelity(5, 20, 2)
    for make in (lambda: NasSearcher(tiny_space_file),
                 lambda: NasSearcher(load(tiny_space_file)),
                 lambda: MultiObjectiveASHAScheduler(tiny_space_file, fidelity)):
        with pytest.raises(SpaceError) as refused:
            make()
        message = str(refused.value)
        assert "\n" not in message and "task.entrypoint" in message
        assert str(folder / "usertask_tune.py") in message and "--allow-code" in message
    assert not (folder / "IMPORTED").exists()

    searcher = NasSearcher(load(tiny_space_file), allow_code=True, eval_examples=16)
    MultiObjectiveASHAScheduler(tiny_space_file, fidelity, allow_code=True)
    config = searcher.suggest("t0")["nas"]
    assert config["allow_code"] is True and config["task"] == task
    request = TrialRequest(spec_json=config["spec"], task=config["task"], num_threads=1,
                           eval_examples=16)
    with pytest.raises(ValueError, match="needs your permission"):
        next(run_by_rungs(request, [20]))
    (folder / "plain.yaml").write_text(text)  # the tiny space: no user code
    assert NasSearcher(folder / "plain.yaml").suggest("t0")["nas"]["allow_code"] is False
