"""Accuracy replicates (`search.replicates`): the front retrained with other seeds when a search
ends, mean and 95 % interval per trial, ledger charges, the front and ≈ over intervals, the
schema, and a run interrupted in the phase finished by resume. Real searches, real training."""

from __future__ import annotations

import json
import os
import signal
import statistics
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from nas.budget import parse_budget
from nas.errors import NasError
from nas.evaluate.trial import TrialRequest
from nas.orchestrator.executor import LocalExecutor
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.replicates import (
    FrontReplicates,
    replicated,
    to_replicate,
    updated_metrics,
)
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.stats import T_975, mean_interval, t_quantile
from nas.store import COMPLETE, Store
from nas.store.models import LedgerRow
from nas.strategies.pareto import front_and_near, pareto_mask
from tests.conftest import TINY_SPACE
from tests.orchestrator.test_remeasure import Driver

NAMES, DIRECTIONS = ["accuracy", "latency_ms"], ["maximize", "minimize"]
OBJECTIVES = [{"name": n, "direction": d} for n, d in zip(NAMES, DIRECTIONS, strict=True)]


def with_search(text: str, settings: str) -> str:
    return text.replace("search: {strategy: nsga2, seed: 0, population_size: 4}",
                        f"search: {{strategy: nsga2, seed: 0, population_size: 4, {settings}}}")


def ledger(store: Store) -> list[tuple[int, str, float]]:
    with store.transaction() as s:
        return [(r.trial_number, r.note, r.device_seconds)
                for r in s.scalars(select(LedgerRow).order_by(LedgerRow.id))]


def search(text, tmp_path, budget="4trials"):
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget(budget), storage=url, threads=1)
    outcome = run_search(loads(text, "space.yaml"), options, NullReporter())
    return outcome, Store(url)


# -- statistics ---------------------------------------------------------------------------------

def test_t_quantiles_and_the_interval_of_the_mean():
    assert t_quantile(1) == 12.706 and t_quantile(2) == 4.303 and t_quantile(30) == 2.042
    # past the table the expansion continues it smoothly (exact: 2.0395, 2.0003, 1.9840)
    assert t_quantile(31) == pytest.approx(2.0395, abs=1e-3)
    assert t_quantile(60) == pytest.approx(2.0003, abs=1e-3)
    assert t_quantile(100) == pytest.approx(1.9840, abs=1e-3)
    assert all(a > b for a, b in zip(T_975, T_975[1:], strict=False))
    mean, std, low, high = mean_interval([0.5, 0.7, 0.6])
    assert mean == pytest.approx(0.6) and std == pytest.approx(0.1)
    assert high - mean == pytest.approx(4.303 * 0.1 / 3 ** 0.5)
    assert mean - low == pytest.approx(high - mean)
    assert mean_interval([0.3]) == (0.3, 0.0, 0.3, 0.3)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_a_failed_replicate_is_in_the_audit_and_out_of_the_mean():
    trial = SimpleNamespace(values={"accuracy": 0.5, "latency_ms": 1.0},
                            metrics={"accuracy": 0.5, "latency_ms": 1.0})
    out = updated_metrics(trial, ["accuracy"], [{"accuracy": 0.7}, None, {"accuracy": 0.6}])
    assert out["accuracy_initial"] == 0.5
    assert out["accuracy_replicate_1"] == 0.7 and out["accuracy_replicate_3"] == 0.6
    assert out["accuracy_replicate_2_failed"] == 1.0 and "accuracy_replicate_2" not in out
    assert out["accuracy_replicates"] == 3 and out["replicate_failures"] == 1
    assert out["accuracy"] == out["accuracy_mean"] == pytest.approx(0.6)
    assert out["accuracy_ci_low"] < 0.6 < out["accuracy_ci_high"]
    assert out["accuracy_spread"] == pytest.approx((out["accuracy_ci_high"] - 0.6) / 0.6)
    assert out["latency_ms"] == 1.0 and "latency_ms_initial" not in out  # not replicated


def record(number, accuracy, latency, arch=None, ci=None, std=0.05, n=3):
    metrics = {"latency_ms_spread": 0.0}
    if ci is not None:
        metrics.update(accuracy_ci_low=ci[0], accuracy_ci_high=ci[1], accuracy_std=std,
                       accuracy_replicates=n)
    return SimpleNamespace(number=number, values={"accuracy": accuracy, "latency_ms": latency},
                           metrics=metrics, arch_hash=arch or str(number), state=COMPLETE)


def test_near_the_front_is_decided_by_the_replicate_intervals():
    fast = record(0, 0.80, 1.0, ci=(0.70, 0.90))
    overlapping = record(1, 0.75, 1.2, ci=(0.72, 0.78))  # beaten on means, not beyond
    clear = record(2, 0.50, 1.2, ci=(0.48, 0.52))  # beaten beyond both intervals
    front, near = front_and_near([fast, overlapping, clear], NAMES, DIRECTIONS)
    assert front == [True, False, False] and near == [False, True, False]
    # without intervals (one seed each) the same values are certain, and nothing is near
    bare = [record(t.number, t.values["accuracy"], 1.0 + t.number / 5) for t in
            (fast, overlapping, clear)]
    assert front_and_near(bare, NAMES, DIRECTIONS)[1] == [False, False, False]
    # a trial never replicated counts with one seed's noise: t(2) · median std = 4.303 · 0.05
    single = record(3, 0.62, 1.2)
    assert front_and_near([fast, clear, single], NAMES, DIRECTIONS)[1] == [False, False, True]
    # the same architecture trained with another recipe is not tied on accuracy
    same_arch = record(4, 0.50, 1.0, arch="0", ci=(0.49, 0.51))
    assert front_and_near([fast, same_arch], NAMES, DIRECTIONS)[1] == [False, False]


def test_what_is_replicated_front_or_near_front():
    trials = [record(0, 0.80, 1.0), record(1, 0.79, 1.05), record(2, 0.2, 1.5),
              record(3, 0.9, 2.0)]
    trials[1].metrics["latency_ms_spread"] = 0.2  # may be as fast as trial 0
    front = to_replicate(trials, OBJECTIVES, ["accuracy"], "front")
    assert [t.number for t in front] == [0, 3]
    near = to_replicate(trials, OBJECTIVES, ["accuracy"], "near_front")
    assert [t.number for t in near] == [0, 1, 3]
    trials[0].metrics.update(accuracy_replicates=3, accuracy_ci_low=0.7, accuracy_ci_high=0.9,
                             accuracy_std=0.04)
    assert replicated(trials[0], ["accuracy"])
    assert 0 not in [t.number for t in to_replicate(trials, OBJECTIVES, ["accuracy"], "front")]
    # for: all (a tabular benchmark's build): every completed trial not replicated yet
    assert [t.number for t in to_replicate(trials, OBJECTIVES, ["accuracy"], "all")] == [1, 2, 3]


# -- the schema -----------------------------------------------------------------------------------

def test_the_schema_and_the_space_hash():
    space = loads(with_search(TINY_SPACE, "replicates: {seeds: 3}"), "space.yaml")
    assert space.config.search.replicates.seeds == 3
    assert space.config.search.replicates.scope == "near_front"
    front = loads(with_search(TINY_SPACE, "replicates: {seeds: 2, for: front}"), "s.yaml")
    assert front.config.search.replicates.scope == "front"
    plain = loads(TINY_SPACE, "space.yaml")
    assert plain.config.search.replicates is None
    assert plain.space_hash == "311def42a1681900"  # as before replicates existed
    assert space.space_hash != plain.space_hash != front.space_hash
    for setting, key in [("replicates: {seeds: 1}", "search.replicates.seeds"),
                         ("replicates: {seeds: 101}", "search.replicates.seeds"),
                         ("replicates: {seeds: many}", "search.replicates.seeds"),
                         ("replicates: {}", "search.replicates.seeds"),
                         ("replicates: {seeds: 3, for: every}", "search.replicates.for"),
                         ("replicates: {seeds: 3, scope: front}", "search.replicates.scope")]:
        with pytest.raises(NasError) as caught:
            loads(with_search(TINY_SPACE, setting), "space.yaml")
        message = str(caught.value)
        assert len(message.splitlines()) == 1 and key in message, message
    with pytest.raises(NasError, match="keys allowed here: seeds, for"):
        loads(with_search(TINY_SPACE, "replicates: {seed: 3}"), "space.yaml")


# -- real searches ------------------------------------------------------------------------------

def test_the_front_is_replicated_averaged_and_charged(tmp_path):
    outcome, store = search(with_search(TINY_SPACE, "remeasure: 0, replicates: {seeds: 3}"),
                            tmp_path)
    assert outcome.status == "finished" and "replicated" in outcome.message, outcome.message
    trials = store.trials(outcome.run_name, states=[COMPLETE])
    done = [t for t in trials if replicated(t, ["accuracy"])]
    assert done
    front, near = front_and_near(trials, NAMES, DIRECTIONS)
    for trial, on, by in zip(trials, front, near, strict=True):
        if on or by:  # nothing on or near the final front is left unreplicated
            assert trial in done
    differ = 0
    for trial in done:
        m = trial.metrics
        seeds = [m["accuracy_initial"], m["accuracy_replicate_1"], m["accuracy_replicate_2"]]
        assert "accuracy_replicate_3" not in m and m["accuracy_replicates"] == 3
        assert m["replicate_failures"] == 0
        assert trial.values["accuracy"] == m["accuracy"] == m["accuracy_mean"] == \
            pytest.approx(statistics.fmean(seeds))
        assert m["accuracy_ci_low"] <= m["accuracy_mean"] <= m["accuracy_ci_high"]
        assert m["accuracy_std"] == pytest.approx(statistics.stdev(seeds))
        assert "latency_ms_initial" not in m  # latency is not trained: left as it was
        differ += len(set(seeds)) > 1  # other seeds train other models
    assert differ >= 1
    points = [[t.values[n] for n in NAMES] for t in trials]  # the front is over the means
    assert [t.pareto for t in trials] == pareto_mask(points, DIRECTIONS)

    rows = ledger(store)
    for trial in trials:
        charges = [r for r in rows if r[0] == trial.number and r[1] == "replicate"]
        assert len(charges) == (2 if trial in done else 0)
        assert all(seconds > 0 for _, _, seconds in charges)
    run = store.run(outcome.run_name)
    assert run.device_seconds == pytest.approx(sum(r[2] for r in rows))
    assert run.device_seconds == pytest.approx(
        sum(t.device_seconds for t in store.trials(outcome.run_name)))
    assert store.ledger(run.id)[2] == 4  # replicates are not trials of a trials budget


class SpyRunner:
    """A real executor that records the seed and spec of every request it runs."""

    def __init__(self) -> None:
        self.executor, self.seen = LocalExecutor(workers=1, threads=1), []
        self.workers = 1

    def submit(self, request):
        self.seen.append((request.seed, request.spec_json, request.latency, request.latency_only))
        return self.executor.submit(request)

    def heal(self) -> None:
        pass


def test_replicates_train_the_trials_spec_with_the_next_seeds(tmp_path):
    outcome, store = search(with_search(TINY_SPACE, "remeasure: 0"), tmp_path, "3trials")
    run = store.run(outcome.run_name)
    space = loads(TINY_SPACE, "space.yaml")
    runner = SpyRunner()
    template = TrialRequest(spec_json="", task=space.task, seed=5, num_threads=1)
    started = []
    try:
        report = FrontReplicates(store, run.id, run.objectives, ["accuracy"], 3, "front",
                                 runner, template,
                                 on_start=lambda count, more: started.append((count, more))
                                 ).run()
    finally:
        runner.executor.shutdown()
    replicated_trials = [t for t in store.trials(run.id) if replicated(t, ["accuracy"])]
    assert report.trials == len(replicated_trials) >= 1 and not report.failures
    assert report.trainings == 2 * report.trials and started[0][1] == 2
    by_spec: dict[str, list[int]] = {}
    for seed, spec_json, latency, latency_only in runner.seen:
        assert latency == () and not latency_only  # a training, latency not timed again
        by_spec.setdefault(spec_json, []).append(seed)
    assert sorted(by_spec.values()) == [[6, 7]] * report.trials
    specs = {t.arch.to_json() for t in replicated_trials}
    assert set(by_spec) == specs  # the trial's own architecture and recipe


# A bigger model and more steps make each replicate take a while, so Ctrl-C lands in the phase.
SLOW = with_search(TINY_SPACE, "remeasure: 0, replicates: {seeds: 3}").replace(
    "steps: 20,", "steps: 150,")


def test_ctrl_c_while_replicating_stops_there_and_resume_finishes(tmp_path):
    (tmp_path / "space.yaml").write_text(SLOW)
    url = f"sqlite:///{tmp_path}/nas.db"
    driver = Driver(tmp_path, "search", "space.yaml", "--budget", "2trials", "--storage", url,
                    "--name", "cut")
    started = driver.wait_for("replicate")
    os.kill(driver.proc.pid, signal.SIGINT)
    stop = driver.wait_for("stop")
    assert driver.finish() == 1, driver.proc.stderr.read()
    assert stop["status"] == "interrupted" and "while replicating the front" in stop["message"]
    store = Store(url)
    done = {e["number"] for e in driver.seen if e["event"] == "trial_replicated"}
    assert {t.number for t in store.trials("cut") if replicated(t, ["accuracy"])} == done
    assert started["count"] > len(done) and started["seeds"] == 2
    before = {t.number: t.metrics for t in store.trials("cut") if t.number in done}

    again = Driver(tmp_path, "resume", "cut", "--storage", url)
    stop = again.wait_for("stop", timeout=300)
    assert again.finish() == 0, again.proc.stderr.read()
    assert stop["status"] == "finished", stop
    trials = store.trials("cut", states=[COMPLETE])
    front, near = front_and_near(trials, NAMES, DIRECTIONS)
    for trial, on, by in zip(trials, front, near, strict=True):
        if trial.number in before:  # not replicated a second time
            assert trial.metrics == before[trial.number]
        if on or by:
            assert replicated(trial, ["accuracy"])
    charged = [n for n, note, _ in ledger(store) if note == "replicate"]
    assert sorted(charged) == sorted(
        [t.number for t in trials if replicated(t, ["accuracy"])] * 2)
    events = [e for e in again.seen if e["event"] == "trial_replicated"]
    assert {e["number"] for e in events} == {
        t.number for t in trials if replicated(t, ["accuracy"])} - done
    assert all(json.dumps(e) for e in events)
