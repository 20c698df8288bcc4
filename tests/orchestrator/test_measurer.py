"""`search.measure`: latency timed by one separate measurement process on its own device and
threads, joined with the training result; real processes, real measurements."""

from __future__ import annotations

import os
from concurrent.futures import Future

import pytest

from nas.budget import parse_budget
from nas.evaluate.trial import TrialRequest, TrialResult
from nas.orchestrator.executor import LocalExecutor
from nas.orchestrator.executor_base import TrialFailed, WorkerOutput
from nas.orchestrator.measurer import Measurer, join
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, PRUNED, Store
from tests.conftest import TINY_SPACE

MEASURED = TINY_SPACE.replace(
    "search: {strategy: nsga2, seed: 0, population_size: 4}",
    "search: {strategy: nsga2, seed: 0, population_size: 4, remeasure: 0,\n"
    "         measure: {device: cpu, threads: 1}}")


def pid(output: WorkerOutput) -> int:
    return int(output.worker.split()[1])  # "pid 4242 ..."


def test_measurer_is_its_own_process_with_its_own_threads():
    space = loads(TINY_SPACE)
    spec = space.assemble({
        "model.d_model": 16, "model.n_layers": 2, "model.norm": "rmsnorm",
        "model.hybrid.full_attention_ratio": 0.5, "model.hybrid.placement": "last",
        "model.hybrid.other": "short_conv", "model.channel_mixer.kind": "mlp",
        "training.steps": 20, "training.batch_size": 8, "training.lr": 1e-3})
    latency = space.latency_requests()
    train = TrialRequest(spec_json=spec.to_json(), task=space.task, latency=(), num_threads=2)
    timing = TrialRequest(spec_json=spec.to_json(), task=space.task, latency=latency)
    executor, measurer = LocalExecutor(workers=1, threads=2), Measurer("cpu", threads=1)
    try:
        trained = executor.submit(train).result(timeout=120)
        timed = measurer.submit(timing).result(timeout=120)
    finally:
        executor.shutdown(cancel=True)
        measurer.shutdown(cancel=True)
    assert pid(timed) not in (pid(trained), os.getpid())
    assert timed.result.fingerprint["threads"] == 1 and timed.result.device == "cpu (1 thread)"
    assert trained.result.device == "cpu (2 threads)"
    assert set(timed.result.metrics) - {"latency_ms_contended"} == {
        "latency_ms", "latency_ms_spread"}  # no training
    assert "accuracy" in trained.result.metrics and "latency_ms" not in trained.result.metrics


def output(metrics, seconds, fingerprint=None, measured=()) -> WorkerOutput:
    result = TrialResult(metrics=dict(metrics), fingerprint=fingerprint or {},
                         measured=list(measured), device="train-device")
    return WorkerOutput(result, "pid 1", seconds)


def test_join_merges_both_results_once_both_are_in():
    training, latency = Future(), Future()
    joined = join(training, latency)
    latency.set_result(output({"latency_ms": 2.0, "latency_ms_spread": 0.1}, 0.5,
                              {"threads": 1}, [{"name": "latency_ms"}]))
    assert not joined.done()
    training.set_result(output({"accuracy": 0.9, "params": 10.0}, 3.0, {"threads": 2}))
    merged = joined.result(timeout=1)
    assert merged.result.metrics == {"accuracy": 0.9, "params": 10.0, "latency_ms": 2.0,
                                     "latency_ms_spread": 0.1}
    assert merged.result.fingerprint == {"threads": 1}  # the measuring device's
    assert merged.result.measured == [{"name": "latency_ms"}]
    assert merged.result.device == "train-device" and merged.seconds == 3.5


def test_join_fails_at_once_with_training_but_waits_for_it_on_a_measurement_failure():
    training, latency = Future(), Future()
    joined = join(training, latency)
    training.set_exception(TrialFailed("TrialDiverged: nan"))
    assert isinstance(joined.exception(timeout=1), TrialFailed)  # latency still pending

    training, latency = Future(), Future()
    joined = join(training, latency)
    latency.set_exception(TrialFailed("ValueError: bad shape"))
    assert not joined.done()  # the training worker is still busy
    training.set_result(output({"accuracy": 0.5}, 1.0))
    assert str(joined.exception(timeout=1)) == "ValueError: bad shape"


def search(text, tmp_path, budget, threads):
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget(budget), storage=url, threads=threads)
    outcome = run_search(loads(text, "space.yaml"), options, NullReporter())
    return outcome, Store(url)


def test_search_trains_with_two_threads_and_measures_with_one(tmp_path):
    outcome, store = search(MEASURED, tmp_path, "3trials", threads=2)
    trials = store.trials(outcome.run_name)
    assert [t.state for t in trials] == [COMPLETE] * 3
    for trial in trials:
        assert trial.device == "cpu (2 threads)"  # where it trained
        [cached] = store.cached_latency(trial.arch_hash)  # what it recorded: timed elsewhere
        assert cached["fingerprint"]["threads"] == 1
        assert cached["fingerprint"]["device"] == "cpu (1 thread)"
        assert trial.values["latency_ms"] == cached["median_ms"]
        assert trial.metrics["latency_ms_spread"] == cached["spread"]


def test_multi_fidelity_gets_latency_at_its_first_rung(tmp_path):
    text = MEASURED.replace("training: {steps: 20,", "training: {steps: 24,").replace(
        "remeasure: 0,", "remeasure: 0, fidelity: {min_steps: 6, reduction: 2},")
    outcome, store = search(text, tmp_path, "4trials", threads=1)
    trials = store.trials(outcome.run_name)
    assert {t.state for t in trials} <= {COMPLETE, PRUNED} and COMPLETE in {
        t.state for t in trials}
    for trial in trials:  # rung values (PRUNED) and final ones alike carry the measured latency
        [cached] = store.cached_latency(trial.arch_hash)
        assert trial.values["latency_ms"] == pytest.approx(cached["median_ms"])
        assert cached["fingerprint"]["threads"] == 1
