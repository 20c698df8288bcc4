"""benchmarks/strategies.py end to end on the small grid table: replayed searches of two
strategies and two seeds recorded, resumed without rerunning, and reported."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from nas.tabular import export_table, write

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "strategies.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("strategies_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture(scope="module")
def table_file(built, tmp_path_factory):
    store, run_name, _ = built
    table = export_table(store, run_name)
    return write(table, tmp_path_factory.mktemp("bench") / "grid.json.gz"), table


def test_the_whole_table_scores_one_and_its_reference_is_the_worst(bench, table_file):
    _, table = table_file
    score = bench.scoring(table)
    assert score.hypervolume(list(table.entries)) == pytest.approx(1.0)
    assert score.hypervolume([]) == 0.0
    accuracy = [v[0] for v in score.means.values()]
    params = [v[1] for v in score.means.values()]
    assert score.reference == (min(accuracy), max(params))


def test_run_resume_and_report(bench, table_file, tmp_path, capsys):
    path, table = table_file
    out = tmp_path / "results.json"
    budget = 3 * bench.mean_training_seconds(table)  # about three of the four trainings
    run = ["run", "--table", str(path), "--strategies", "random,evolution", "--seeds", "2",
           "--budget-seconds", str(budget), "--out", str(out), "--tmp", str(tmp_path)]
    bench.main(run)
    doc = json.loads(out.read_text())
    assert doc["budget"] == {"unit": "device_seconds", "amount": budget,
                             "text": f"{budget / 3600:.12f}cpuh"}
    assert doc["table"]["configurations"] == 4
    assert [(r["seed"], r["strategy"]) for r in doc["runs"]] == [  # seed-major
        (0, "random"), (0, "evolution"), (1, "random"), (1, "evolution")]
    for r in doc["runs"]:
        assert r["status"] == "finished" and r["replay_misses"] == 0
        assert r["states"].get("FAIL", 0) == 0
        assert 1 <= r["trials_charged"] <= 4 and r["wall_seconds"] > 0
        assert len(r["completions"]) == r["states"]["COMPLETE"]
        points = r["trajectory"]
        assert points and points[-1][2] == r["final_hypervolume"]
        assert all(0 < p[2] <= 1 + 1e-9 for p in points)
        for a, b in zip(points, points[1:], strict=False):  # monotone in spending and value
            assert a[0] <= b[0] and a[1] <= b[1] and a[2] <= b[2]
        assert r["device_seconds"] <= budget + max(
            t.device_seconds for e in table.entries.values() for t in e.trainings)

    before = out.read_text()
    bench.main(run)  # everything is there: nothing runs again
    assert out.read_text() == before
    assert "0 runs to do (4 already in" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="another budget"):
        bench.main([*run[:-6], "--budget-trials", "3", "--out", str(out)])

    markdown, plot = tmp_path / "report.md", tmp_path / "report.png"
    bench.main(["report", str(out), "--markdown", str(markdown), "--plot", str(plot)])
    printed = capsys.readouterr().out
    text = markdown.read_text()
    assert text.strip() in printed and plot.stat().st_size > 0
    assert "| random | 2 |" in text and "| evolution | 2 |" in text
    assert "vs random @25%" in text and "(p " in text  # evolution tested against random


def test_a_configuration_missing_from_the_table_is_counted_as_a_replay_miss(bench, table_file,
                                                                           tmp_path):
    _, table = table_file
    kept = dict(list(table.entries.items())[1:])  # one configuration of the space dropped
    path = write(dataclasses.replace(table, entries=kept), tmp_path / "holed.json.gz")
    out = tmp_path / "results.json"
    bench.main(["run", "--table", str(path), "--strategies", "grid", "--seeds", "1",
                "--budget-trials", "4", "--out", str(out), "--tmp", str(tmp_path)])
    (run,) = json.loads(out.read_text())["runs"]
    assert run["replay_misses"] == run["states"]["FAIL"] == 1
    assert run["states"]["COMPLETE"] == 3 and run["trials_charged"] == 4
    assert run["final_hypervolume"] == pytest.approx(1.0)  # the whole (holed) table found
