"""Measured objectives of a trial: latency, throughput (from the same timing), peak memory and
decode state, through the worker's own entry point."""

from __future__ import annotations

import pytest

from nas.blocks import build_model
from nas.evaluate.memory import MIB, measure_peak_memory
from nas.evaluate.trial import TrialRequest, latency_options, measure_entries, run_trial


def entry(name, metric, phase="prefill", batch=2, seq_len=32):
    return {"name": name, "metric": metric, "phase": phase, "batch": batch, "seq_len": seq_len}


def test_throughput_comes_from_the_latency_timing_of_the_same_shape(make_spec):
    model = build_model(make_spec(), seed=0)
    entries = [entry("latency_ms", "latency"), entry("tokens_per_s", "throughput"),
               entry("decode_ms", "latency", "decode"),
               entry("decode_tokens_per_s", "throughput", "decode")]
    metrics, measured = measure_entries(model, entries, vocab_size=16, seed=0,
                                        fingerprint_key="fp")
    assert metrics["tokens_per_s"] == pytest.approx(2 * 32 / (metrics["latency_ms"] / 1e3))
    assert metrics["decode_tokens_per_s"] == pytest.approx(2 / (metrics["decode_ms"] / 1e3))
    assert metrics["tokens_per_s_spread"] == metrics["latency_ms_spread"]
    # one timing per shape, reported once per entry that used it (re-measurement pools by name)
    assert [m["name"] for m in measured] == [e["name"] for e in entries]
    assert measured[0]["median_ms"] == measured[1]["median_ms"] == metrics["latency_ms"]
    assert measured[1]["value"] == metrics["tokens_per_s"]


def test_a_cached_timing_answers_throughput_without_timing(make_spec):
    model = build_model(make_spec(), seed=0)
    cached = {"fingerprint_hash": "fp", "phase": "prefill", "batch": 2, "seq_len": 32,
              "median_ms": 4.0, "spread": 0.03, "repeats": 9}
    metrics, measured = measure_entries(model, [entry("tps", "throughput")], vocab_size=16,
                                        seed=0, fingerprint_key="fp", cache_rows=[cached])
    assert metrics == {"tps": 2 * 32 / 0.004, "tps_spread": 0.03} and measured == []
    _, measured = measure_entries(model, [entry("tps", "throughput")], vocab_size=16, seed=0,
                                  fingerprint_key="other device", cache_rows=[cached])
    assert len(measured) == 1  # another fingerprint's figure is not reused


def test_memory_and_state_are_deterministic_and_in_their_units(make_spec):
    model = build_model(make_spec(), seed=0)
    entries = [entry("peak_memory", "peak_memory", "train_step"),
               entry("state_bytes", "state_bytes", batch=3, seq_len=500)]
    metrics, measured = measure_entries(model, entries, vocab_size=16, seed=0,
                                        fingerprint_key="fp")
    expected = measure_peak_memory(model, batch=2, seq_len=32, vocab_size=16, phase="train_step")
    assert metrics["peak_memory"] == pytest.approx(expected / MIB)
    assert metrics["state_bytes"] == 3 * model.state_bytes(500)
    assert metrics["peak_memory_spread"] == metrics["state_bytes_spread"] == 0.0
    assert measured == []  # nothing for the latency cache, nothing to re-measure


def test_a_latency_only_request_reports_every_metric(make_spec):
    spec = make_spec()
    request = TrialRequest(
        spec_json=spec.to_json(), task={"kind": "mqar", "vocab_size": 16, "seq_len": 24,
                                        "num_kv_pairs": 3},
        latency=(entry("latency_ms", "latency"), entry("tps", "throughput"),
                 entry("memory_mib", "peak_memory"), entry("state", "state_bytes")),
        latency_only=True, latency_sessions=2)
    result = run_trial(request)
    contended = {"latency_ms_contended", "tps_contended"}  # timings only, where load is known
    assert set(result.metrics) - contended == {
        "latency_ms", "tps", "memory_mib", "state",
        *(f"{n}_spread" for n in ("latency_ms", "tps", "memory_mib", "state"))}
    assert result.metrics["memory_mib"] > 0 and result.metrics["state"] > 0
    assert sorted((m["name"], m["session"]) for m in result.measured) == [
        ("latency_ms", 1), ("latency_ms", 2), ("tps", 1), ("tps", 2)]


def test_an_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="unknown metric 'energy'"):
        latency_options(entry("joules", "energy"))


def test_only_steady_timings_are_kept_for_later_trials():
    from nas.evaluate.measurement import CACHEABLE_SPREAD, cacheable

    rows = [{"phase": "prefill", "spread": 0.02}, {"phase": "decode", "spread": 1.15},
            {"phase": "train_step", "spread": CACHEABLE_SPREAD}]
    assert [r["phase"] for r in cacheable(rows)] == ["prefill", "train_step"]
