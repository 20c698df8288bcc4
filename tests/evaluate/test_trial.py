"""run_trial end to end on a tiny spec, and its request validation."""

from __future__ import annotations

import pickle

import pytest
import torch

from nas.blocks import build_model
from nas.evaluate import TrialRequest, TrialResult, run_trial

TASK = {"kind": "mqar", "vocab_size": 16, "seq_len": 24, "num_kv_pairs": 3}
RECIPE = {"steps": 20, "batch_size": 8, "lr": 3e-3, "warmup_fraction": 0.2, "grad_clip": 1.0}
LATENCY = (
    {"name": "latency_ms", "batch": 1, "seq_len": 64, "phase": "prefill", "max_seconds": 0.2},
    {"name": "latency_b4_ms", "batch": 4, "seq_len": 32},
)


def request_for(spec, **changes) -> TrialRequest:
    fields = {"spec_json": spec.to_json(), "task": TASK, "latency": LATENCY,
              "eval_examples": 64} | changes
    return TrialRequest(**fields)


def test_run_trial_end_to_end(make_spec):
    spec = make_spec(training=RECIPE)
    torch.set_num_threads(2)  # the conftest fixture restores the count afterwards
    request = request_for(spec, seed=3, num_threads=1)
    assert pickle.loads(pickle.dumps(request)) == request

    result = run_trial(request)

    assert isinstance(result, TrialResult)
    assert set(result.metrics) == {
        "accuracy", "loss", "bits_per_byte", "perplexity", "params", "train_seconds", "steps",
        "latency_ms", "latency_ms_spread", "latency_b4_ms", "latency_b4_ms_spread",
        "latency_ms_contended", "latency_b4_ms_contended",  # other work during the timing?
    }
    assert result.metrics["steps"] == 20  # trained to the end
    assert result.metrics["params"] == build_model(spec, seed=3).num_params()
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert result.metrics["latency_ms"] > 0 and result.metrics["train_seconds"] > 0
    assert result.device == "cpu (1 thread)" and torch.get_num_threads() == 1
    assert result.wall_seconds >= result.metrics["train_seconds"]

    train_points = [p for p in result.curve if p[1] == "train_loss"]
    assert [p[0] for p in train_points] == [10, 20]
    assert (20, "val_accuracy", result.metrics["accuracy"]) in result.curve
    assert (20, "val_loss", result.metrics["loss"]) in result.curve
    assert pickle.loads(pickle.dumps(result)) == result


def test_run_trial_is_deterministic_without_latency(make_spec):
    request = request_for(make_spec(training=RECIPE), latency=())
    first, second = run_trial(request), run_trial(request)
    assert first.curve == second.curve
    assert set(first.metrics) == {
        "accuracy", "loss", "bits_per_byte", "perplexity", "params", "train_seconds", "steps",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"training": {"steps": 5, "batch_size": 4}}, "missing lr"),
        ({"training": RECIPE | {"momentum": 0.9}}, "unknown momentum.*accepted keys"),
        ({"latency": ({"name": "l", "batch": 1, "seq_len": 8, "phase": "generate"},)},
         "supported: prefill, decode, train_step"),
        ({"latency": ({"name": "l", "batch": 1, "seqlen": 8},)}, "missing seq_len"),
        ({"latency": ({"name": "accuracy", "batch": 1, "seq_len": 8},)}, "name 'accuracy'"),
        ({"latency": (LATENCY[0], LATENCY[0])}, "distinct names"),
        ({"task": {"kind": "mqar", "vocab_size": 32}}, "vocab_size"),
    ],
)
def test_invalid_requests_fail_before_building_a_model(make_spec, monkeypatch, changes, message):
    monkeypatch.setattr("nas.evaluate.trial.build_model", pytest.fail)
    training = changes.pop("training", RECIPE)
    request = request_for(make_spec(training=training), **changes)
    with pytest.raises(ValueError, match=message):
        run_trial(request)


def test_every_latency_phase_reaches_the_metrics(make_spec):
    latency = tuple({"name": f"latency_{p}", "batch": 1, "seq_len": 16, "phase": p,
                     "max_repeats": 5} for p in ("prefill", "decode", "train_step"))
    result = run_trial(request_for(make_spec(training=RECIPE), latency=latency))
    for entry in latency:
        assert result.metrics[entry["name"]] > 0


def test_a_trial_trained_in_segments_ends_where_one_run_does(make_spec, tmp_path):
    """Multi-fidelity's segments (stop at a rung, checkpoint, resume in a later request) reach
    the same held-out scores as the uninterrupted trial; latency comes from the first one."""
    spec = make_spec(training=RECIPE)
    whole = run_trial(request_for(spec, latency=(), seed=2))
    checkpoint = str(tmp_path / "7.checkpoint.pt")
    first = run_trial(request_for(spec, seed=2, stop_step=5, checkpoint_out=checkpoint))
    assert "latency_ms" in first.metrics and (5, "val_accuracy", first.metrics["accuracy"]) \
        in first.curve
    second = run_trial(request_for(spec, seed=2, stop_step=12, checkpoint_in=checkpoint,
                                   checkpoint_out=checkpoint))
    assert "latency_ms" not in second.metrics  # measured once, by the first segment
    last = run_trial(request_for(spec, seed=2, checkpoint_in=checkpoint))
    assert last.metrics["accuracy"] == whole.metrics["accuracy"]
    assert last.metrics["loss"] == whole.metrics["loss"]
    assert [p for p in last.curve if p[1] == "train_loss"][-1][0] == 20


def test_a_cached_latency_on_this_device_is_used_instead_of_measuring(make_spec):
    from nas.evaluate.device import device_fingerprint, fingerprint_hash

    spec = make_spec(training=RECIPE)
    here = fingerprint_hash(device_fingerprint("cpu"))
    cached = {"phase": "prefill", "batch": 1, "seq_len": 64, "median_ms": 123.0, "spread": 0.5,
              "repeats": 7}
    result = run_trial(request_for(spec, latency_cache=(
        {**cached, "fingerprint_hash": here},
        {**cached, "fingerprint_hash": "another-device", "batch": 4, "seq_len": 32},
    )))
    assert result.metrics["latency_ms"] == 123.0 and result.metrics["latency_ms_spread"] == 0.5
    assert result.metrics["latency_b4_ms"] != 123.0  # cached for another device: measured
    assert [(m["batch"], m["seq_len"], m["fingerprint_hash"]) for m in result.measured] == \
        [(4, 32, here)]
    assert result.fingerprint == device_fingerprint("cpu")


def test_weights_that_cannot_be_written_do_not_cost_the_trial(make_spec, tmp_path):
    """A full disk (here: a path below a file) when saving weights: the trial's results stand,
    it just keeps no weights, and says so."""
    (tmp_path / "a_file").write_text("")
    request = request_for(make_spec(training=RECIPE), latency=(),
                          weights_file=str(tmp_path / "a_file" / "0.safetensors"))
    with pytest.warns(RuntimeWarning, match="weights not kept"):
        result = run_trial(request)
    assert result.weights is None and 0 <= result.metrics["accuracy"] <= 1
