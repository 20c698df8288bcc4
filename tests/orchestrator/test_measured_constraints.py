"""Constraints on measured quantities (latency_ms, decode_ms, peak_memory_mb, a measured
objective): checked at load time like any constraint, measured on the untrained model before a
candidate trains, so one that fails never trains; measured once per architecture."""

from __future__ import annotations

import textwrap

import optuna
import pytest
from sqlalchemy import select

from nas.budget import parse_budget
from nas.errors import SpaceError
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, INFEASIBLE, Store
from nas.store.models import LedgerRow

SPACE = textwrap.dedent("""\
    name: fast-only
    task: {kind: mqar, vocab_size: 16, seq_len: 16, num_kv_pairs: 2}
    model:
      d_model: 16
      n_layers: {choice: [1, 2]}
      token_mixers:
        short_conv: {kernel_size: 2}
      channel_mixer: {kind: mlp, expansion: 2}
    training: {steps: 20, batch_size: 8, lr: {choice: [1.0e-3, 2.0e-3]}}
    objectives:
      - {name: accuracy, goal: maximize}
      - {name: prefill, goal: minimize, batch: 1, seq_len: 16, phase: prefill}
    search: {strategy: random, seed: 0, remeasure: 0}
    constraints: [CONSTRAINT]
""")


def space(constraint: str):
    return loads(SPACE.replace("CONSTRAINT", f'"{constraint}"'), "space.yaml")


def test_measured_names_and_shapes_compile_to_measurements():
    compiled = space("latency_ms <= 5 and decode_ms(seq_len=512) < 2 and "
                     "peak_memory_mb(batch=2, seq_len=32) < 100 and prefill < 3 and params < 1e6")
    entries = {e["name"]: e for e in compiled.constraint_measurements()}
    assert entries == {
        "latency_ms": {"name": "latency_ms", "metric": "latency", "phase": "prefill",
                       "batch": 1, "seq_len": 16},  # the task's seq_len by default
        "decode_ms(seq_len=512)": {"name": "decode_ms(seq_len=512)", "metric": "latency",
                                   "phase": "decode", "batch": 1, "seq_len": 512},
        "peak_memory_mb(batch=2,seq_len=32)": {
            "name": "peak_memory_mb(batch=2,seq_len=32)", "metric": "peak_memory",
            "phase": "prefill", "batch": 2, "seq_len": 32},
        "prefill": {"name": "prefill", "metric": "latency", "phase": "prefill", "batch": 1,
                    "seq_len": 16},  # the objective's own measurement
    }
    assert space("params < 1e6").constraint_measurements() == ()


def test_measured_constraints_are_judged_on_the_values_given():
    compiled = space("latency_ms <= 5 and decode_ms(seq_len=512) < 2")
    spec = compiled.sample(optuna.create_study().ask())
    assert compiled.violation(spec) is None  # not judged at sampling time
    ok = {"latency_ms": 1.0, "decode_ms(seq_len=512)": 1.5}
    assert compiled.measured_violation(spec, ok) is None
    reason = compiled.measured_violation(spec, {**ok, "decode_ms(seq_len=512)": 2.5})
    assert reason == ("latency_ms <= 5 and decode_ms(seq_len=512) < 2: latency_ms = 1, "
                      "decode_ms(seq_len=512) = 2.5")


@pytest.mark.parametrize("constraint, words", [
    ("latency_ms(seq=5) < 1", "latency_ms takes seq_len= and/or batch="),
    ("latency_ms(seq_len=0.5) < 1", "seq_len must be a positive integer"),
    ("decode_ms(batch) < 1", "decode_ms takes seq_len= and/or batch="),
    ("latency_ms < 1 and latency_ms(seq_len=64) < 2", "latency_ms is used both bare and"),
    ("latency < 1", "unknown name 'latency'"),
])
def test_a_bad_measured_constraint_fails_at_load_naming_the_key(constraint, words):
    with pytest.raises(SpaceError) as info:
        space(constraint)
    assert "constraints.0" in str(info.value) and words in str(info.value)


def search(constraint: str, tmp_path, budget: str = "3trials"):
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget(budget), storage=url, threads=1)
    outcome = run_search(space(constraint), options, NullReporter())
    return outcome, Store(url)


def test_a_candidate_failing_a_measured_constraint_never_trains(tmp_path):
    outcome, store = search("latency_ms <= 0.000001", tmp_path)  # no model is this fast
    trials = store.trials(outcome.run_name)
    assert trials and all(t.state == INFEASIBLE for t in trials)
    assert outcome.message.startswith("no feasible candidates"), outcome.message
    measured = [t for t in trials if t.device_seconds > 0]
    # Measured once per architecture (2 depths); repeats are answered from that, free.
    assert len(measured) == 2 and len({t.arch_hash for t in measured}) == 2
    for trial in trials:
        assert trial.error.startswith("latency_ms <= 0.000001: latency_ms = "), trial.error
        assert trial.failure is None  # a constraint, not a failure
        assert store.curve(outcome.run_name, trial.number) == []  # never trained
    with store.transaction() as s:
        notes = s.scalars(select(LedgerRow.note)).all()
    assert notes == ["infeasible", "infeasible"]
    assert len(store.cached_latency(measured[0].arch_hash)) == 1  # the timing is cached
    study = optuna.load_study(study_name=outcome.run_name, storage=store.url)
    assert {f.system_attrs["constraints:nas_space"] for f in study.trials} == {1.0}


def test_a_candidate_meeting_it_trains_with_the_measurement_reused(tmp_path):
    outcome, store = search("latency_ms <= 100000 and peak_memory_mb < 100000", tmp_path,
                            budget="2trials")
    trials = store.trials(outcome.run_name)
    assert [t.state for t in trials] == [COMPLETE, COMPLETE], [t.error for t in trials]
    for trial in trials:
        assert trial.metrics["latency_ms"] > 0 and trial.metrics["peak_memory_mb"] > 0
        assert trial.metrics["train_seconds"] > 0
    with store.transaction() as s:
        notes = s.scalars(select(LedgerRow.note)).all()
    assert notes.count("screen") >= 1 and notes.count("complete") == 2
