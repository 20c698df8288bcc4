"""`nas measure`: one architecture timed by hand, from a trial or a spec file."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from nas.blocks import build_model
from nas.cli import app
from nas.store import Store

runner = CliRunner()


def test_measure_a_trial_fills_the_latency_cache(kept_run):
    store = Store(kept_run.url)
    trial = store.trials(kept_run.name)[0]
    before = len(store.cached_latency(trial.arch_hash))
    result = runner.invoke(app, [
        "measure", f"{kept_run.name}/{trial.number}", "--storage", kept_run.url,
        "--seq-len", "16", "--seq-len", "48", "--phase", "decode", "--threads", "1",
        "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["arch_hash"] == trial.arch_hash
    model = build_model(trial.arch, seed=0)
    assert [(m["phase"], m["seq_len"]) for m in report["measurements"]] == \
        [("decode", 16), ("decode", 48)]
    assert all(m["median_ms"] > 0 and m["repeats"] >= 5 for m in report["measurements"])
    for m in report["measurements"]:  # decode: one token per sequence per pass
        assert m["tokens_per_s"] == 1 / (m["median_ms"] / 1e3)
        assert m["peak_mib"] > 0 and m["state_bytes"] == model.state_bytes(m["seq_len"])
    assert len(store.cached_latency(trial.arch_hash)) == before + 2


def test_measure_a_spec_file(tmp_path, kept_run):
    spec = Store(kept_run.url).trials(kept_run.name)[0].arch
    path = tmp_path / "arch.json"
    path.write_text(json.dumps([json.loads(spec.to_json())]))  # as `space sample` prints it
    result = runner.invoke(app, ["measure", str(path), "--seq-len", "32", "--phase", "prefill",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "prefill" in result.output and "median ms" in result.output
    assert "tokens/s" in result.output and "peak MiB" in result.output


def test_measure_says_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\"d_model\": 8}")
    for args, message in (
        ([str(bad)], "not an ArchSpec JSON file"),
        ([str(bad), "--phase", "warp"], "unknown --phase 'warp'"),
        (["nope/1", "--storage", f"sqlite:///{tmp_path}/none.db"], "no database at"),
    ):
        result = runner.invoke(app, ["measure", *args])
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "none.db").exists()  # a query never creates a database


def test_measure_refuses_sizes_past_the_limits(tmp_path, monkeypatch):
    """--seq-len, --batch and their product have a space file's limits, --threads 4 per core:
    one line with a fix, exit 2, before anything is built (no allocation, no huge thread pool)."""
    import nas.evaluate.latency as latency

    monkeypatch.setattr(latency, "measure_latency", _never)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    path = tmp_path / "arch.json"
    path.write_text("{}")
    for args, message in (
        (["--seq-len", "99999999999"], "--seq-len 99999999999 is too large; fix: use at most "
                                       "1,048,576"),
        (["--batch", "100000000"], "--batch 100000000 is too large; fix: use at most 65,536"),
        (["--batch", "64", "--seq-len", "1048576"], "more than 16,777,216; fix: a smaller"),
        (["--threads", "100000"], "fix: use at most 8"),
        (["--threads", "9"], "fix: use at most 8"),
    ):
        result = runner.invoke(app, ["measure", str(path), *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def _never(*args, **kwargs):
    raise AssertionError("measured past a limit")


def _spec_file(tmp_path, kept_run):
    spec = Store(kept_run.url).trials(kept_run.name)[0].arch
    path = tmp_path / "arch.json"
    path.write_text(spec.to_json())
    return path


def test_measure_out_of_memory_is_one_line(tmp_path, kept_run, monkeypatch):
    import nas.evaluate.latency as latency

    def allocate(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 799999999992 bytes.")

    monkeypatch.setattr(latency, "measure_latency", allocate)
    result = runner.invoke(app, ["measure", str(_spec_file(tmp_path, kept_run)),
                                 "--seq-len", "4096", "--threads", "1"])
    assert result.exit_code == 2, result.output
    assert "needs more memory than this machine has; fix: smaller --seq-len/--batch" in \
        result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_measure_other_runtime_errors_are_not_hidden(tmp_path, kept_run, monkeypatch):
    import nas.evaluate.latency as latency

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(latency, "measure_latency", broken)
    result = runner.invoke(app, ["measure", str(_spec_file(tmp_path, kept_run)),
                                 "--threads", "1"])
    assert isinstance(result.exception, RuntimeError)


def test_measure_ctrl_c_is_one_line(tmp_path, kept_run, monkeypatch):
    import nas.evaluate.latency as latency

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(latency, "measure_latency", interrupted)
    store = Store(kept_run.url)
    trial = store.trials(kept_run.name)[0]
    before = len(store.cached_latency(trial.arch_hash))
    result = runner.invoke(app, ["measure", f"{kept_run.name}/{trial.number}", "--storage",
                                 kept_run.url, "--threads", "1"])
    assert result.exit_code == 130, result.output
    assert result.output.strip() == "interrupted: nothing was measured or recorded"
    assert len(store.cached_latency(trial.arch_hash)) == before
