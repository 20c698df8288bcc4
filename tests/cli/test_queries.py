"""The query CLI over one tiny real search: csv output, sorting, compare, rm."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys

import pytest

from nas.store import Store


def nas(*args: str, cwd=None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True,
                          cwd=cwd, input=stdin, timeout=600)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One real search (3 trials of a tiny space, run "q") shared by this module's tests.
    Tests that delete work on a copy (see `copy_db`)."""
    from tests.conftest import TINY_SPACE

    root = tmp_path_factory.mktemp("queries")
    (root / "tiny.yaml").write_text(TINY_SPACE)
    url = f"sqlite:///{root}/results.db"
    proc = nas("search", "tiny.yaml", "--budget", "3trials", "--storage", url, "--name", "q",
               cwd=root)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return url


@pytest.fixture
def copy_db(db, tmp_path):
    """A private copy of the searched database (store and Optuna tables alike)."""
    source = sqlite3.connect(db.removeprefix("sqlite:///"))
    target = sqlite3.connect(tmp_path / "copy.db")
    source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{tmp_path}/copy.db"


def query(*args: str) -> str:
    out = nas(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def as_json(*args: str):
    return json.loads(query(*args, "--format", "json"))


def as_csv(*args: str) -> list[dict[str, str]]:
    text = query(*args, "--format", "csv")
    assert "\x1b[" not in text and "━" not in text, "plain text, no rich markup"
    return list(csv.DictReader(io.StringIO(text)))


def cell(value) -> str:
    """How a JSON value reads in a csv cell."""
    return "" if value is None else str(value)


def expected_row(trial: dict, objectives=("accuracy", "latency_ms")) -> dict[str, str]:
    values = trial["values"] or {}
    row = {key: trial[key] for key in ("number", "state", "short_form", "d_model", "n_layers",
                                       "params")}
    row.update({name: values.get(name) for name in objectives})
    row.update({key: trial[key] for key in ("device_seconds", "pareto", "arch_hash", "failure")})
    return {k: cell(v) for k, v in row.items()}


TRIAL_HEADER = ["number", "state", "short_form", "d_model", "n_layers", "params", "accuracy",
                "latency_ms", "device_seconds", "pareto", "arch_hash", "failure"]


@pytest.mark.parametrize("command", ["trials", "pareto"])
def test_trial_lists_as_csv_match_json(db, command):
    rows = as_csv(command, "q", "--storage", db)
    trials = as_json(command, "q", "--storage", db)
    extra = ["within_noise"] if command == "pareto" else []  # ≈ rows after the front
    assert rows and list(rows[0]) == TRIAL_HEADER + extra
    assert rows == [{**expected_row(t), **{k: str(t.get(k, False)) for k in extra}}
                    for t in trials]
    for row in rows:  # floats round-trip exactly
        assert float(row["accuracy"]) == next(
            t["values"]["accuracy"] for t in trials if str(t["number"]) == row["number"])


def test_show_as_csv_is_the_trial_row_plus_its_metrics(db):
    shown = as_json("show", "q/0", "--storage", db)
    (row,) = as_csv("show", "q/0", "--storage", db)
    assert list(row)[: len(TRIAL_HEADER)] == TRIAL_HEADER
    assert {k: row[k] for k in TRIAL_HEADER} == expected_row(shown)
    assert shown["metrics"] and set(shown["metrics"]) <= set(row)
    for name, value in shown["metrics"].items():
        assert float(row[name]) == value


def test_runs_as_csv_match_json(db):
    (row,) = as_csv("runs", "--storage", db)
    (run,) = as_json("runs", "--storage", db)
    for key in ("name", "status", "created_at", "budget", "strategy", "seed", "trials_complete",
                "trials_total", "device_seconds", "space_hash"):
        assert row[key] == cell(run[key]), key
    assert row["objectives"] == "accuracy (maximize); latency_ms (minimize)"


def test_sort_ascending_descending_and_limit(db):
    trials = as_json("trials", "q", "--storage", db)
    done = [t for t in trials if t["values"]]
    assert len(done) >= 2
    by_latency = [t["number"] for t in sorted(done, key=lambda t: t["values"]["latency_ms"])]
    got = as_json("trials", "q", "--storage", db, "--sort", "latency_ms")
    assert [t["number"] for t in got][: len(by_latency)] == by_latency
    by_accuracy = [t["number"] for t in sorted(done, key=lambda t: -t["values"]["accuracy"])]
    got = as_csv("trials", "q", "--storage", db, "--sort", "-accuracy")
    assert [int(r["number"]) for r in got][: len(by_accuracy)] == by_accuracy
    got = as_json("trials", "q", "--storage", db, "--sort", "-number", "--limit", "2")
    assert [t["number"] for t in got] == sorted((t["number"] for t in trials), reverse=True)[:2]
    got = as_json("trials", "q", "--storage", db, "--sort", "-loss", "--limit", "1")  # a metric
    assert got[0]["metrics"]["loss"] == max(t["metrics"]["loss"] for t in done)
    table = query("trials", "q", "--storage", db, "--sort", "-accuracy", "--limit", "1")
    assert str(by_accuracy[0]) in table and table.count("complete") == 1


def test_sort_puts_trials_without_the_value_last():
    from types import SimpleNamespace

    from nas.cli.query import sort_trials

    run = SimpleNamespace(objective_names=["accuracy"])

    def trial(number, accuracy):
        return SimpleNamespace(
            number=number, state="COMPLETE" if accuracy is not None else "FAIL", short_form="A",
            d_model=16, n_layers=1, params=None, device_seconds=0.0, pareto=False, arch_hash="h",
            values=None if accuracy is None else {"accuracy": accuracy}, metrics=None,
            failure=None if accuracy is not None else "error")

    records = [trial(0, 0.5), trial(1, None), trial(2, 0.9), trial(3, 0.1)]
    assert [t.number for t in sort_trials(run, records, "accuracy")] == [3, 0, 2, 1]
    assert [t.number for t in sort_trials(run, records, "-accuracy")] == [2, 0, 3, 1]
    assert [t.number for t in sort_trials(run, records, "-params")] == [0, 1, 2, 3]


def test_unknown_sort_key_is_one_line_listing_the_keys(db):
    out = nas("trials", "q", "--storage", db, "--sort", "-speed")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "unknown --sort key 'speed'" in out.stderr
    for key in ("number", "accuracy", "latency_ms", "params", "loss"):
        assert key in out.stderr


def test_compare_table_and_json(db):
    pair = as_json("compare", "q/0", "q/2", "--storage", db)
    assert pair["a"]["number"] == 0 and pair["b"]["number"] == 2
    assert pair["a"]["run"] == pair["b"]["run"] == "q"
    assert pair["b"] == {**as_json("trials", "q", "--storage", db)[2], "run": "q"}
    table = query("compare", "q/0", "q/2", "--storage", db)
    assert "q/0" in table and "q/2" in table and "B − A" in table
    for label in ("layer 0 token mixer", "layer 0 channel mixer", "d_model", "params",
                  "training.lr", "accuracy", "latency_ms", "loss"):
        assert label in table, label
    a, b = pair["a"], pair["b"]
    assert f"{b['params'] - a['params']:+,}" in table or a["params"] == b["params"]


@pytest.mark.parametrize("args,words", [
    (["q/0", "q/99"], "no trial 99 in run"),
    (["q/0", "nope/1"], "no run 'nope'"),
    (["q", "q/1"], "expected RUN/NUMBER"),
])
def test_compare_bad_refs_are_one_line(db, args, words):
    out = nas("compare", *args, "--storage", db)
    assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0


def test_rm_answered_no_keeps_everything(copy_db):
    import optuna

    out = nas("rm", "q", "--storage", copy_db, stdin="n\n")
    assert out.returncode == 1
    assert "'q'" in out.stdout and "3 trials" in out.stdout  # the question names run and count
    assert [r["name"] for r in as_json("runs", "--storage", copy_db)] == ["q"]
    assert len(Store(copy_db).trials("q")) >= 3
    assert optuna.load_study(study_name="q", storage=copy_db).trials


def test_rm_yes_deletes_run_trials_curves_ledger_and_study(copy_db):
    import optuna

    store = Store(copy_db)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    out = nas("rm", "q", "--storage", copy_db, "--yes")
    assert out.returncode == 0, out.stderr
    assert as_json("runs", "--storage", copy_db) == []
    with store.engine.connect() as connection:
        for table in ("nas_runs", "nas_trials", "nas_metrics", "nas_budget_ledger"):
            assert connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0
    with pytest.raises(KeyError):
        optuna.load_study(study_name="q", storage=copy_db)
    again = nas("rm", "q", "--storage", copy_db, "--yes")
    assert again.returncode == 2 and "no run 'q'" in again.stderr


def test_where_filters_with_the_safe_expression_language(db):
    everything = as_json("trials", "q", "--storage", db)
    complete = [t for t in everything if t["values"]]
    threshold = sorted(t["values"]["latency_ms"] for t in complete)[len(complete) // 2]
    kept = as_json("trials", "q", "--storage", db, "--where", f"latency_ms <= {threshold}")
    expected = [t["number"] for t in complete if t["values"]["latency_ms"] <= threshold]
    assert [t["number"] for t in kept] == expected and kept
    both = as_json("trials", "q", "--storage", db, "--where",
                   f"latency_ms <= {threshold} and params < 1M and not (accuracy > 1)")
    assert [t["number"] for t in both] == expected
    for bad, words in (("__import__('os')", "--where"), ("accuracyy > 1", "unknown name"),
                       ("accuracy", "needs a condition"),
                       ("count(attention) >= 1", "count(attention) is not available"),
                       ("short_form > 1", "cannot compare")):
        out = nas("trials", "q", "--storage", db, "--where", bad)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr


def test_where_compares_text_columns_and_state_is_checked(db):
    everything = as_json("trials", "q", "--storage", db)
    form = everything[0]["short_form"]
    same = as_json("trials", "q", "--storage", db, "--where",
                   f"short_form == '{form}' and state == 'COMPLETE'")
    assert [t["number"] for t in same] == [
        t["number"] for t in everything if t["short_form"] == form and t["state"] == "COMPLETE"]
    front = as_json("trials", "q", "--storage", db, "--where", "pareto == true")
    assert [t["number"] for t in front] == [t["number"] for t in everything if t["pareto"]]
    out = nas("trials", "q", "--storage", db, "--state", "BOGUS")
    assert out.returncode == 2 and "unknown --state 'BOGUS'" in out.stderr
    assert "COMPLETE" in out.stderr


def test_an_error_message_is_printed_verbatim_brackets_and_all(db):
    out = nas("trials", "x[/]y[red]z", "--storage", db)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "x[/]y[red]z" in out.stderr.replace("\n", "")


def test_pareto_marks_trials_within_measurement_noise(tmp_path):
    """Trial 1 loses to trial 0 by less than their latency spreads: shown after the front as ≈
    (table), within_noise (json, csv); trial 2 loses beyond them and is not shown."""
    import json as json_module

    from typer.testing import CliRunner

    from nas.cli import app
    from nas.store import Store
    from tests.store.test_store import new_run, spec

    url = f"sqlite:///{tmp_path}/noise.db"
    store = Store(url)
    run = new_run(store, name="noisy")
    for number, latency in enumerate((10.0, 10.4, 20.0)):
        store.start_trial(run.id, number, spec(d_model=16 * (number + 1)), worker="w")
        store.complete_trial(
            run.id, number, values={"accuracy": 0.9, "latency_ms": latency},
            metrics={"accuracy": 0.9, "latency_ms": latency, "latency_ms_spread": 0.05},
            curve=[], device="cpu", device_seconds=1.0, wall_seconds=1.0)
    runner = CliRunner()
    table = runner.invoke(app, ["pareto", "noisy", "--storage", url])
    assert table.exit_code == 0 and "≈ 1 more within measurement noise" in table.output
    rows = json_module.loads(runner.invoke(app, ["pareto", "noisy", "--storage", url,
                                                 "--format", "json"]).output)
    assert [(r["number"], r.get("within_noise", False)) for r in rows] == [(0, False), (1, True)]
    csv_out = runner.invoke(app, ["pareto", "noisy", "--storage", url, "--format", "csv"]).output
    assert csv_out.splitlines()[0].endswith(",within_noise")
    assert [line.split(",")[-1] for line in csv_out.splitlines()[1:]] == ["False", "True"]


def test_noisy_spreads_and_contended_timings_are_flagged_where_shown(copy_db):
    store = Store(copy_db)
    run = store.run("q")
    [first, *_] = store.trials(run.id, states=["COMPLETE"])
    metrics = {**first.metrics, "latency_ms_spread": 22.91, "latency_ms_contended": 1.0}
    store.record_remeasure(run.id, {first.number: (first.values, metrics)},
                           charged=first.number, device_seconds=0.0, wall_seconds=0.0)

    shown = query("show", f"q/{first.number}", "--storage", copy_db)
    assert "2291.0% !" in shown and "contended" in shown
    listed = query("trials", "q", "--storage", copy_db)
    assert "±2291%" in listed and "contended" in listed
    assert "other processes needed the cores" in " ".join(listed.split())  # the caption
    # machine-readable output keeps the numbers
    [row] = [r for r in as_json("trials", "q", "--storage", copy_db)
             if r["number"] == first.number]
    assert row["metrics"]["latency_ms_contended"] == 1.0
