"""Failure classes (nas.failures): each exception a trial can raise gets its class in the worker;
a real search stores it (`nas_trials.failure`), tells diverged candidates to the strategy as
infeasible, and the CLI filters and counts by it; a database from before the column is
backfilled from its error texts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime

import optuna
import pytest
import torch
from sqlalchemy import create_engine, text

from nas.budget import parse_budget
from nas.evaluate.errors import TrialDiverged, TrialTimedOut
from nas.failures import (
    COMPILE_ERROR,
    DIVERGED,
    ERROR,
    OOM,
    TIMEOUT,
    classify,
)
from nas.orchestrator.executor_base import TrialFailed, TrialOutOfMemory, worker_failure
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import FAIL, Store, migrate


def raised(exc: BaseException) -> BaseException:
    """`exc` as caught after a raise (with its traceback), as a worker sees it."""
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


def dynamo_refusal() -> BaseException:
    """A real compiler error: TorchDynamo asked for one graph of a function that breaks it."""
    import torch._dynamo

    def two_graphs(x):
        torch._dynamo.graph_break()
        return x + 1

    try:
        torch.compile(two_graphs, fullgraph=True, backend="eager")(torch.ones(2))
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("torch.compile accepted a graph break under fullgraph=True")


def test_each_exception_gets_its_class():
    allocation = raised(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried "
                                     "to allocate 4611686018427387904 bytes"))
    assert classify(raised(TrialDiverged(20, float("nan")))) == DIVERGED
    assert classify(raised(TrialTimedOut(30, 12.5, 10.0))) == TIMEOUT
    assert classify(allocation) == OOM
    assert classify(torch.OutOfMemoryError("CUDA out of memory")) == OOM
    assert classify(dynamo_refusal()) == COMPILE_ERROR
    assert classify(raised(ValueError("out of memory"))) == ERROR  # not an allocator's words
    assert classify(raised(RuntimeError("shape mismatch"))) == ERROR


def test_the_worker_sends_the_class_back_and_it_pickles():
    import pickle

    for exc, kind, failure in ((TrialDiverged(20, float("inf")), TrialFailed, DIVERGED),
                               (MemoryError(), TrialOutOfMemory, OOM),
                               (KeyError("x"), TrialFailed, ERROR)):
        try:
            raise exc
        except BaseException as caught:  # noqa: BLE001
            sent = pickle.loads(pickle.dumps(worker_failure(caught)))
        assert type(sent) is kind and sent.failure == failure
        assert sent.message.startswith(type(exc).__name__)


DIVERGING_SPACE = textwrap.dedent("""\
    name: unstable
    task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
    model:
      d_model: 16
      n_layers: 1
      token_mixers:
        short_conv: {kernel_size: 2}
      channel_mixer: {kind: mlp, expansion: 2}
    training: {steps: 40, batch_size: 8, lr: {choice: [1.0e+6, 3.0e+6]}, grad_clip: 0}
    objectives:
      - {name: accuracy, goal: maximize}
    search: {strategy: random, seed: 0}
""")


def nas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True,
                          timeout=300)


def test_a_diverging_candidate_is_stored_diverged_and_told_infeasible(tmp_path):
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("2trials"), storage=url, threads=1)
    outcome = run_search(loads(DIVERGING_SPACE, "space.yaml"), options, NullReporter())
    store = Store(url)
    trials = store.trials(outcome.run_name)
    assert [(t.state, t.failure) for t in trials] == [(FAIL, DIVERGED)] * 2, \
        [t.error for t in trials]
    assert all(t.error.startswith("TrialDiverged: training diverged") for t in trials)
    # The sampler learns the region: infeasible (constraint violated), not an ignored FAIL.
    study = optuna.load_study(study_name=outcome.run_name, storage=url)
    assert [(f.state, f.system_attrs["constraints:nas_space"]) for f in study.trials] == [
        (optuna.trial.TrialState.COMPLETE, 1.0)] * 2

    where = nas("trials", outcome.run_name, "--storage", url, "--where",
                "failure == 'diverged'", "--format", "json")
    assert where.returncode == 0, where.stderr
    assert [t["number"] for t in json.loads(where.stdout)] == [0, 1]
    none = nas("trials", outcome.run_name, "--storage", url, "--where", "failure == 'oom'",
               "--format", "json")
    assert none.returncode == 0 and json.loads(none.stdout) == []
    report = nas("report", outcome.run_name, "--storage", url, "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "2 diverged" in markdown
    assert "| 0 | FAIL | diverged |" in markdown


NOW = datetime(2025, 1, 2, 3, 4, 5)
OLD_TRIALS = (  # (state, error) as nas wrote them before the failure column
    ("COMPLETE", None), ("FAIL", "lost: the search driver stopped mid-trial"),
    ("FAIL", "cancelled: the search was interrupted (Ctrl-C) while it ran"),
    ("FAIL", "abandoned: the run ended (failed) while it ran"),
    ("FAIL", "TrialDiverged: training diverged: loss is nan by step 20"),
    ("FAIL", "KeyError: 'x'\nTraceback ..."),
    ("INFEASIBLE", "out of memory: RuntimeError: can't allocate memory"),
    ("INFEASIBLE", "params = 120 is not <= 100"),
)


def test_a_0004_database_gets_each_trials_class_from_its_error(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    migrate.upgrade(engine, "0004")
    spec = {"d_model": 16, "vocab_size": 16, "norm": "rmsnorm", "layers": [], "training": {}}
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO nas_runs (id, name, status, created_at, space_path, space_text, "
            "space_hash, objectives, strategy, seed, budget, budget_unit, budget_amount, "
            "versions, host, elapsed_seconds) VALUES (1, 'old-1', 'finished', :now, 's.yaml', "
            "'name: old', 'h', :objectives, 'tpe', 0, '8trials', 'trials', 8, '{}', 'h', 1)"),
            {"now": NOW, "objectives": json.dumps([{"name": "accuracy",
                                                    "direction": "maximize"}])})
        for number, (state, error) in enumerate(OLD_TRIALS):
            c.execute(text(
                "INSERT INTO nas_trials (run_id, number, state, spec_json, arch_hash, "
                "config_hash, short_form, d_model, n_layers, \"values\", pareto, started_at, "
                "device_seconds, error, retries) VALUES (1, :n, :state, :spec, :h, :h, 'A', "
                "16, 1, :values, 0, :now, 1.0, :error, 0)"),
                {"n": number, "state": state, "spec": json.dumps(spec), "h": f"h{number}",
                 "values": json.dumps({"accuracy": 0.5}) if state == "COMPLETE" else None,
                 "now": NOW, "error": error})
    engine.dispose()
    store = Store(url, create=False)  # upgrades to HEAD
    found = [t.failure for t in store.trials("old-1")]
    assert found == [None, "lost", "cancelled", "abandoned", "diverged", "error", "oom", None]
    run = store.run("old-1")
    assert store.unfinished_trials(run.id) == [1, 2, 3]  # what `nas resume` trains again


def test_a_trial_past_its_timeout_fails_as_timeout(tmp_path):
    slow = DIVERGING_SPACE.replace("lr: {choice: [1.0e+6, 3.0e+6]}, grad_clip: 0",
                                   "lr: 3.0e-3").replace("steps: 40", "steps: 1000000")
    slow = slow.replace("search: {strategy: random, seed: 0}",
                        "search: {strategy: random, seed: 0, trial_timeout: 2s}")
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("1trials"), storage=url, threads=1)
    outcome = run_search(loads(slow, "space.yaml"), options, NullReporter())
    [trial] = Store(url).trials(outcome.run_name)
    assert (trial.state, trial.failure) == (FAIL, TIMEOUT), trial.error
    assert "search.trial_timeout" in trial.error
    assert 2.0 <= trial.device_seconds < 60  # stopped near its limit, charged for it


@pytest.mark.parametrize("written, seconds", [("90s", 90.0), ("10m", 600.0), ("2h", 7200.0),
                                              (45, 45.0), ("1.5 min", 90.0)])
def test_trial_timeout_reads_durations(written, seconds):
    space = loads(DIVERGING_SPACE.replace("seed: 0}", f"seed: 0, trial_timeout: {written}}}"),
                  "space.yaml")
    assert space.config.search.trial_timeout == seconds


def test_an_unreadable_trial_timeout_is_one_line_with_the_fix(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(DIVERGING_SPACE.replace("seed: 0}", "seed: 0, trial_timeout: soon}"))
    out = nas("validate", str(path))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "trial_timeout" in out.stderr and "10m" in out.stderr
