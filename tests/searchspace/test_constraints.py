"""Constraints of a space file: checked at load time, priced on the meta device, enforced by the
search loop (infeasible candidates recorded, never trained, never charged)."""

from __future__ import annotations

import json
import re
from concurrent.futures import Future

import optuna
import pytest

import nas.orchestrator.loop as loop_module
import nas.orchestrator.workers as workers_module
from nas.blocks.model import build_model
from nas.budget import parse_budget
from nas.errors import SpaceError
from nas.evaluate.trial import TrialResult
from nas.orchestrator.executor_base import WorkerOutput
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.searchspace.constraints import format_quantity, meta_model, quantities
from nas.spec import ArchSpec, LayerSpec, ModuleSpec
from nas.store import COMPLETE, Store
from nas.store.store import INFEASIBLE
from nas.strategies.optuna_strategy import CONSTRAINT


def with_constraints(text: str, *constraints: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in constraints)
    return text + f"constraints: [{quoted}]\n"


def test_quantities_equal_the_models_own_costs():
    mixers = ["attention", "linear_attention", "short_conv", "mamba2", "deltanet", "long_conv"]
    specs = [
        ArchSpec(d_model=32, vocab_size=16, layers=tuple(
            LayerSpec(ModuleSpec.make(kind), ModuleSpec.make(channel))
            for kind in (mixers[i % len(mixers)], mixers[(i + 1) % len(mixers)], "attention")))
        for i, channel in enumerate(["swiglu", "mlp", "moe", "geglu", "swiglu", "mlp"])
    ]
    for spec in specs:
        model = build_model(spec)  # on the CPU, real weights
        env = quantities(spec)
        assert env["params"].compute() == model.num_params() == sum(
            p.numel() for p in model.parameters())
        assert env["flops_per_token"](seq_len=512) == model.flops_per_token(512)
        assert env["state_bytes"](seq_len=4096) == model.state_bytes(4096)
        assert env["n_layers"] == 3 and env["d_model"] == 32
        assert env["count"]("attention") == sum(k == "attention" for k in spec.mixer_kinds)
        assert next(meta_model(spec).parameters()).device.type == "meta"
        assert meta_model(spec) is meta_model(spec)  # cached per arch_hash


def test_violation_names_the_constraint_and_its_values(tiny_space_text):
    space = loads(with_constraints(
        tiny_space_text, "params <= 2e6", "state_bytes(seq_len=4096) <= 0.5KiB",
        "count(attention) >= 1 or d_model < 32"))
    spec = space.assemble({
        "model.d_model": 32, "model.n_layers": 2, "model.norm": "rmsnorm",
        "model.hybrid.full_attention_ratio": 0, "model.hybrid.other": "short_conv",
        "model.channel_mixer.kind": "mlp", "training.steps": 20, "training.batch_size": 8,
        "training.lr": 1e-3,
    })
    model = build_model(spec)
    expected = format_quantity("state_bytes", model.state_bytes(4096))
    reason = space.violation(spec)
    assert reason == ("state_bytes(seq_len=4096) <= 0.5KiB: "
                      f"state_bytes(seq_len=4096) = {expected}")
    loose = loads(with_constraints(tiny_space_text, "count(attention) >= 1 or d_model < 32"))
    assert loose.violation(spec) == ("count(attention) >= 1 or d_model < 32: d_model = 32, "
                                     "count(attention) = 0")
    assert loads(with_constraints(tiny_space_text, "params > 0")).violation(spec) is None
    big = loads(with_constraints(tiny_space_text, "params <= 1k"))
    assert big.violation(spec) == f"params <= 1k: params = {model.num_params() / 1e3:.3g}k"


def test_format_quantity():
    assert format_quantity("params", 3_100_000) == "3.1M"
    assert format_quantity("params", 999) == "999"
    assert format_quantity("state_bytes", 4 * 2**20) == "4MiB"
    assert format_quantity("state_bytes", 100) == "100B"
    assert format_quantity("flops_per_token", 2.5e9) == "2.5G"


@pytest.mark.parametrize("constraint, match", [
    ("parms <= 2e6", "constraints.0: unknown name 'parms' — fix: known names: params, n_layers"),
    ("state_bytes <= 4MiB", "state_bytes needs a context length"),
    ("latency(seq_len=4) < 2", "unknown function 'latency'"),
    ("count(atention) >= 1", "unknown token mixer 'atention'; known: .*attention"),
    ("count(attention, short_conv) >= 1", "count takes one token mixer"),
    ("state_bytes() < 1", "takes one keyword, e.g. state_bytes\\(seq_len=4096\\)"),
    ("flops_per_token(seq_len=0) < 1", "seq_len must be a positive integer"),
    ("params", "is not a condition"),
    ("params <= 4MB", "unknown unit 'MB'"),
    ("__import__('os').system('true')", "constraints.0: "),
    ("params.real < 1", "attribute access not allowed"),
])
def test_bad_constraint_is_one_line_space_error(tiny_space_text, constraint, match):
    with pytest.raises(SpaceError, match=match) as info:
        loads(with_constraints(tiny_space_text, constraint), "space.yaml")
    assert info.value.key == "constraints.0"
    assert "\n" not in str(info.value)
    assert re.match(r"space\.yaml:\d+:\d+: constraints\.0: ", str(info.value))


def test_index_names_the_bad_entry_and_schema_wants_strings(tiny_space_text):
    with pytest.raises(SpaceError, match="constraints.1: unknown name 'nope'"):
        loads(with_constraints(tiny_space_text, "params < 1M", "nope < 1"))
    with pytest.raises(SpaceError, match="constraints"):
        loads(tiny_space_text + "constraints: params < 1\n")


def test_space_hash_unchanged_without_constraints(tiny_space_text):
    plain = loads(tiny_space_text).space_hash
    assert loads(tiny_space_text + "constraints: []\n").space_hash == plain
    assert loads(with_constraints(tiny_space_text, "params < 1M")).space_hash != plain


# -- the search loop --------------------------------------------------------------------------


class _InstantExecutor:
    """Stands in for LocalExecutor: 'trains' at once, so the loop runs in milliseconds."""

    submitted: list[ArchSpec] = []

    def __init__(self, workers=1, threads=None):
        self.workers, self.threads = workers, threads or 1

    def submit(self, request):
        spec = ArchSpec.from_dict(json.loads(request.spec_json))
        _InstantExecutor.submitted.append(spec)
        future: Future = Future()
        metrics = {"accuracy": 0.5, "latency_ms": 1.0 + spec.n_layers, "params": 1000.0}
        future.set_result(WorkerOutput(TrialResult(metrics=metrics), "fake", 0.25))
        return future

    def heal(self):
        pass

    def shutdown(self, cancel=False):
        pass


def _search(text, tmp_path, budget):
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget(budget), storage=url, threads=1)
    outcome = run_search(loads(text, "space.yaml"), options, NullReporter())
    return outcome, Store(url)


def test_search_records_attention_heavy_candidates_as_infeasible(
        tmp_path, tiny_space_text, monkeypatch):
    monkeypatch.setattr(workers_module, "LocalExecutor", _InstantExecutor)
    monkeypatch.setattr(_InstantExecutor, "submitted", [])
    text = with_constraints(tiny_space_text.replace("seed: 0", "seed: 1, remeasure: 0"),
                            "count(attention) <= 1")  # no end-of-search re-measurement charge
    outcome, store = _search(text, tmp_path, "8trials")
    trials = store.trials(outcome.run_name)
    states = {t.state for t in trials}
    assert states == {COMPLETE, INFEASIBLE}  # the seed gives both
    for t in trials:
        attention = sum(layer["mixer"]["kind"] == "attention" for layer in t.spec["layers"])
        if t.state == INFEASIBLE:
            assert attention > 1
            assert t.error == f"count(attention) <= 1: count(attention) = {attention}"
            assert t.values is None and t.device_seconds == 0 and t.params > 0
        else:
            assert attention <= 1
    assert all(spec.mixer_kinds.count("attention") <= 1 for spec in _InstantExecutor.submitted)
    run = store.run(outcome.run_name)
    complete = [t for t in trials if t.state == COMPLETE]
    assert len(complete) == 8  # infeasible samples do not count against a trials budget
    assert store.ledger(run.id) == (pytest.approx(0.25 * 8), pytest.approx(0.25 * 8), 8)
    study = optuna.load_study(study_name=run.name, storage=f"sqlite:///{tmp_path}/nas.db")
    # Optuna's constraints support: infeasible candidates are complete trials whose violation
    # ranks them below every feasible one; none of them is on Optuna's own front
    violated = [t.number for t in study.trials if t.constraints.get(CONSTRAINT, 0) > 0]
    assert violated == [t.number for t in trials if t.state == INFEASIBLE]
    assert all(study.trials[n].state == optuna.trial.TrialState.COMPLETE for n in violated)
    assert not {t.number for t in study.best_trials} & set(violated)


def test_search_where_nothing_is_feasible_stops_and_charges_nothing(
        tmp_path, tiny_space_text, monkeypatch):
    monkeypatch.setattr(loop_module, "MAX_DUPLICATE_STREAK", 25)

    def no_training(*args, **kwargs):
        raise AssertionError("an infeasible candidate was sent to a worker")

    monkeypatch.setattr(workers_module.LocalExecutor, "submit", no_training)
    outcome, store = _search(with_constraints(tiny_space_text, "params <= 1"), tmp_path,
                             "5trials")
    assert outcome.status == "finished"
    assert outcome.message.startswith("no feasible candidates: the last 25 samples all failed")
    trials = store.trials(outcome.run_name)
    assert len(trials) == 25 and {t.state for t in trials} == {INFEASIBLE}
    assert all(t.error.startswith("params <= 1: params = ") for t in trials)
    run = store.run(outcome.run_name)
    assert store.ledger(run.id) == (0.0, 0.0, 0)
    assert run.device_seconds == 0 and outcome.front == []
