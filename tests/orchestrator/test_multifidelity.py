"""A whole search with multi-fidelity: segments, pauses, promotions, pruning, the ledger."""

from __future__ import annotations

import optuna
import pytest

from nas.budget import parse_budget
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, PRUNED, Store


def fidelity_space(text: str, steps: int = 27, fidelity: str = "{min_steps: 3, reduction: 3}"):
    text = text.replace("training: {steps: 20,", f"training: {{steps: {steps},")
    return text.replace("search: {strategy: nsga2, seed: 0, population_size: 4}",
                        f"search: {{strategy: random, seed: 0, fidelity: {fidelity}}}")


class Completions(NullReporter):
    """Keeps the seconds each completed trial was reported with."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}

    def trial_complete(self, number, spec, values, seconds) -> None:
        self.seconds[number] = seconds


def test_a_search_with_fidelity_prunes_at_rungs_and_completes_the_best(tmp_path, tiny_space_text):
    url = f"sqlite:///{tmp_path}/nas.db"
    space = loads(fidelity_space(tiny_space_text), "space.yaml")
    options = SearchOptions(budget=parse_budget("9trials"), storage=url, threads=1)
    reporter = Completions()
    outcome = run_search(space, options, reporter)
    store = Store(url)
    trials = [t for t in store.trials(outcome.run_name) if t.state in (COMPLETE, PRUNED)]
    segments: dict[int, float] = {}  # the whole trial, every segment (not re-measurement)
    for entry in store.ledger_entries(outcome.run_name):
        if entry.note in ("rung", "complete"):
            number = entry.trial_number
            segments[number] = segments.get(number, 0.0) + entry.device_seconds
    assert reporter.seconds and all(seconds == pytest.approx(segments[number])
                                    for number, seconds in reporter.seconds.items())
    states = {t.number: t.state for t in trials}
    assert len(trials) == 9 and set(states.values()) == {COMPLETE, PRUNED}
    assert sum(s == COMPLETE for s in states.values()) < 9  # halving stopped some early
    for t in trials:
        curve = store.curve(outcome.run_name, t.number)
        val_steps = [step for step, name, _ in curve if name == "val_accuracy"]
        assert val_steps == sorted(val_steps) and set(val_steps) <= {3, 9, 27}
        if t.state == COMPLETE:
            assert val_steps[-1] == 27 and t.values["accuracy"] == curve[-2][2]
        else:  # pruned at the rung it reached, its values those of that rung
            assert val_steps[-1] < 27 and t.metrics["steps"] == val_steps[-1]
            last_accuracy = [v for step, n, v in curve if n == "val_accuracy"][-1]
            assert t.values["accuracy"] == last_accuracy and not t.pareto
        assert "latency_ms" in t.values  # measured once, in the first segment
    from rich.console import Console

    from nas.cli.render import trials_table

    shown = Console(record=True, width=200)
    shown.print(trials_table("t", store.run(outcome.run_name), trials))
    assert "pruned @3" in shown.export_text() or "pruned @9" in shown.export_text()
    # every segment was charged, each trial counts once against a trials budget
    device_seconds, _, charged = store.ledger(store.run(outcome.run_name).id)
    assert charged == 9
    assert device_seconds == pytest.approx(sum(t.device_seconds for t in trials))
    # fewer trials reach each rung than the one below (the rule itself: test_fidelity.py)
    reached = [{step for step, name, _ in store.curve(outcome.run_name, t.number)
                if name == "val_accuracy"} for t in trials]
    at = [sum(rung in r for r in reached) for rung in (3, 9, 27)]
    assert at[0] == 9 and at[0] > at[1] >= at[2] >= 1
    # Optuna saw the same outcomes
    study = optuna.load_study(study_name=outcome.run_name, storage=url)
    optuna_states = {t.number: t.state for t in study.trials}
    for number, state in states.items():
        expected = {COMPLETE: optuna.trial.TrialState.COMPLETE,
                    PRUNED: optuna.trial.TrialState.PRUNED}[state]
        assert optuna_states[number] == expected
    assert not list((tmp_path / "nas-artifacts").rglob("*.checkpoint.pt"))  # cleaned up


def test_fidelity_needs_fixed_steps_below_the_rungs(tiny_space_text):
    from nas.errors import SpaceError

    with pytest.raises(SpaceError, match="min_steps=30 leaves no rung below training.steps=27"):
        loads(fidelity_space(tiny_space_text, fidelity="{min_steps: 30}"), "space.yaml")
    searched = fidelity_space(tiny_space_text).replace("steps: 27", "steps: {choice: [9, 27]}")
    with pytest.raises(SpaceError, match="needs a fixed training.steps"):
        loads(searched, "space.yaml")


def test_an_architecture_is_timed_once_per_device(tmp_path, tiny_space_text):
    """Only the learning rate is searched: every trial is the same architecture, so its latency
    is measured by the first trial and read from the cache by the others — once a timing fit
    to reuse exists: one taken while other work competed for the cores is marked contended and
    timed again by the next trial (a CI run saw this when a server of an earlier test was still
    stopping), so on a busy machine the reuse starts later."""
    from nas.evaluate.measurement import CACHEABLE_SPREAD, cacheable

    fixed = (tiny_space_text.replace("d_model: {choice: [16, 32]}", "d_model: 16")
             .replace("n_layers: {choice: [2, 3]}", "n_layers: 2")
             .replace("full_attention_ratio: {choice: [0, 0.5, 1]}", "full_attention_ratio: 1")
             .replace("heads: {choice: [2, 4]}, kv_heads: {choice: [1, full]}", "heads: 2")
             .replace("kind: {choice: [mlp, swiglu]}", "kind: mlp")
             .replace("population_size: 4}", "population_size: 4, remeasure: 0}"))  # as cached
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget("3trials"), storage=url, threads=1)
    outcome = run_search(loads(fixed, "space.yaml"), options, NullReporter())
    store = Store(url)
    trials = store.trials(outcome.run_name)
    assert len({t.config_hash for t in trials}) == 3 and len({t.arch_hash for t in trials}) == 1
    cached = store.cached_latency(trials[0].arch_hash)
    assert len(cached) == 1 and cached[0]["fingerprint"]["threads"] == 1
    latencies = [t.values["latency_ms"] for t in sorted(trials, key=lambda t: t.number)]
    if not cacheable(cached):
        pytest.skip("every timing was contended or unsteady (a busy machine): nothing to reuse")
    first = latencies.index(cached[0]["median_ms"])  # the timing the cache kept
    assert latencies[first:] == [cached[0]["median_ms"]] * (3 - first)  # reused from then on
    if not any(t.metrics.get("latency_ms_contended") or
               t.metrics.get("latency_ms_spread", 0.0) > CACHEABLE_SPREAD for t in trials):
        assert first == 0  # a quiet machine: timed by the first trial only
