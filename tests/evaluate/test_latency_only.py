"""Latency-only requests (the measurement worker's and the front re-measurement's): timed in
independent sessions, nothing trained, the cache honoured for the first session only."""

from __future__ import annotations

import pytest
import torch

from nas.evaluate import TrialRequest, run_trial
from nas.evaluate.device import device_fingerprint, fingerprint_hash

TASK = {"kind": "mqar", "vocab_size": 16, "seq_len": 24, "num_kv_pairs": 3}
LATENCY = (
    {"name": "latency_ms", "batch": 1, "seq_len": 32, "max_seconds": 0.2},
    {"name": "latency_decode", "batch": 2, "seq_len": 16, "phase": "decode", "max_seconds": 0.2},
)


def latency_request(spec, **changes) -> TrialRequest:
    fields = {"spec_json": spec.to_json(), "task": TASK, "latency": LATENCY,
              "latency_only": True} | changes
    return TrialRequest(**fields)


def test_sessions_are_separate_measurements_and_nothing_trains(make_spec):
    spec = make_spec(training={"steps": 10_000, "batch_size": 8, "lr": 1e-3})  # never trained
    result = run_trial(latency_request(spec, latency_sessions=3, num_threads=1))

    assert set(result.metrics) == {
        f"{name}{suffix}" for name in ("latency_ms", "latency_decode")
        for suffix in ("", "_spread", "_contended")}
    assert {result.metrics["latency_ms_contended"]} <= {0.0, 1.0}
    assert result.curve == [] and result.weights is None
    assert sorted((m["name"], m["session"]) for m in result.measured) == sorted(
        (name, k) for name in ("latency_ms", "latency_decode") for k in (1, 2, 3))
    first = {m["name"]: m for m in result.measured if m["session"] == 1}
    assert result.metrics["latency_ms"] == first["latency_ms"]["median_ms"]
    assert result.metrics["latency_decode_spread"] == first["latency_decode"]["spread"]
    assert all(m["median_ms"] > 0 and m["repeats"] >= 5 for m in result.measured)
    assert result.fingerprint["threads"] == 1 and result.device == "cpu (1 thread)"
    # fresh sessions: the same figure three times over would mean one session reported thrice
    assert len({m["median_ms"] for m in result.measured if m["name"] == "latency_ms"}) > 1


def test_the_cache_answers_the_first_session_only(make_spec):
    spec = make_spec()
    torch.set_num_threads(1)
    key = fingerprint_hash(device_fingerprint("cpu"))
    cache = tuple({"fingerprint_hash": key, "phase": e.get("phase", "prefill"),
                   "batch": e["batch"], "seq_len": e["seq_len"], "median_ms": 123.0,
                   "spread": 0.5, "repeats": 9} for e in LATENCY)
    once = run_trial(latency_request(spec, latency_cache=cache, num_threads=1))
    assert once.metrics["latency_ms"] == 123.0 and once.measured == []

    twice = run_trial(latency_request(spec, latency_cache=cache, num_threads=1,
                                      latency_sessions=2))
    assert twice.metrics["latency_ms"] == 123.0
    assert {m["session"] for m in twice.measured} == {2}
    assert all(m["median_ms"] != 123.0 for m in twice.measured)


def test_bad_session_count_is_refused(make_spec):
    with pytest.raises(ValueError, match="latency_sessions must be >= 1"):
        run_trial(latency_request(make_spec(), latency_sessions=0))
