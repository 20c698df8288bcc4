"""The CLI as a user runs it: a tiny real search end to end, then every query command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nas.store import COMPLETE, Store
from nas.strategies.pareto import pareto_mask


def nas(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One real search (3 trials of a tiny space) shared by the query tests."""
    from tests.conftest import TINY_SPACE

    root = tmp_path_factory.mktemp("search")
    (root / "tiny.yaml").write_text(TINY_SPACE)
    url = f"sqlite:///{root}/results.db"
    proc = nas("search", "tiny.yaml", "--budget", "3trials", "--storage", url, "--name", "t",
               cwd=root)
    return proc, url, root


def test_search_end_to_end(searched):
    proc, url, root = searched
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Pareto front of t" in proc.stdout
    assert f"database: {root}/results.db" in proc.stdout
    store = Store(url)
    run = store.run("t")
    assert run.status == "finished" and "budget spent: 3 of 3 trials" in run.message
    trials = store.trials("t")
    charged = [t for t in trials if t.state != "DUPLICATE"]
    assert len(charged) == 3
    complete = [t for t in trials if t.state == COMPLETE]
    assert complete, [t.error for t in trials]
    for t in complete:
        assert set(t.values) == {"accuracy", "latency_ms"}
        assert 0.0 <= t.values["accuracy"] <= 1.0 and t.values["latency_ms"] > 0
        assert t.params and t.params > 0 and t.device_seconds > 0
        assert store.curve("t", t.number), "per-step metrics are stored"
    device_seconds, _, count = store.ledger(run.id)
    assert count == 3 and device_seconds == pytest.approx(sum(t.device_seconds for t in charged))
    front = {t.number for t in store.pareto("t")}
    mask = pareto_mask([[t.values["accuracy"], t.values["latency_ms"]] for t in complete],
                       ["maximize", "minimize"])
    assert front == {t.number for t, m in zip(complete, mask, strict=True) if m}


def test_query_commands(searched):
    _, url, _ = searched
    out = nas("trials", "t", "--storage", url, "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) >= 3
    for row in rows:
        assert {"number", "state", "arch_hash", "values", "spec", "device_seconds"} <= set(row)
    front = json.loads(nas("pareto", "t", "--storage", url, "--format", "json").stdout)
    # the front first, then any trials within latency noise of it (marked ≈ in the table)
    assert front and all(r["pareto"] != r.get("within_noise", False) for r in front)
    flags = [r["pareto"] for r in front]
    assert flags[0] and flags == sorted(flags, reverse=True)
    number = front[0]["number"]
    shown = json.loads(nas("show", f"t/{number}", "--storage", url, "--format", "json").stdout)
    assert shown["number"] == number and shown["curve"]
    table = nas("show", f"t/{number}", "--storage", url)
    assert table.returncode == 0 and "token mixer" in table.stdout
    runs = json.loads(nas("runs", "--storage", url, "--format", "json").stdout)
    assert [r["name"] for r in runs] == ["t"]
    assert nas("trials", "t", "--storage", url).returncode == 0
    assert "Pareto front of t" in nas("pareto", "t", "--storage", url).stdout


@pytest.mark.parametrize("args,words", [
    (["trials", "nope"], "no run 'nope'"),
    (["show", "t/99"], "no trial 99 in run"),
    (["show", "t"], "expected RUN/NUMBER"),
    (["trials", "t", "--format", "xml"], "unknown --format"),
])
def test_query_errors_are_one_line(searched, args, words):
    _, url, _ = searched
    out = nas(*args, "--storage", url)
    assert out.returncode == 2
    assert words in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0


def test_user_errors_before_search(tmp_path, tiny_space_text):
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_space_text.replace("d_model: {choice: [16, 32]}", "d_model: {choise: 1}"))
    for args in (["validate", str(bad)], ["search", str(bad), "--budget", "1trials"]):
        out = nas(*args, cwd=tmp_path)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert "bad.yaml:4:3: model.d_model" in out.stderr
    good = tmp_path / "good.yaml"
    good.write_text(tiny_space_text)
    out = nas("search", str(good), "--budget", "10parsecs", cwd=tmp_path)
    assert out.returncode == 2 and "cannot read budget" in out.stderr
    out = nas("search", str(good), cwd=tmp_path)
    assert out.returncode == 2 and "no budget" in out.stderr
    assert not (tmp_path / "nas.db").exists() or Store(f"sqlite:///{tmp_path}/nas.db").runs() == []


def test_validate_prints_the_decisions(tiny_space_file):
    out = nas("validate", str(tiny_space_file))
    assert out.returncode == 0, out.stderr
    assert "model.hybrid.placement" in out.stdout and "training.lr" in out.stdout


def test_queries_never_create_a_database(tmp_path):
    out = nas("runs", cwd=tmp_path)
    assert out.returncode == 2 and "no database at" in out.stderr
    assert not (tmp_path / "nas.db").exists()


def test_import_nas_is_light():
    code = ("import sys, nas; heavy = [m for m in ('torch', 'ray', 'triton', 'optuna') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_optuna_sees_the_same_study(searched):
    """A copy of the strategy's Optuna study lives in the run's database under the run's name,
    written from nas's tables: with the values nas holds (re-measured ones included)."""
    import optuna

    _, url, _ = searched
    study = optuna.load_study(study_name="t", storage=url)
    store_values = {t.number: t.values for t in Store(url).trials("t") if t.values}
    optuna_values = {t.number: t.values for t in study.trials if t.values is not None}
    assert optuna_values and set(optuna_values) == set(store_values)
    for number, values in optuna_values.items():
        assert values == [store_values[number]["accuracy"], store_values[number]["latency_ms"]]


def test_search_and_resume_say_first_that_the_machine_is_busy(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from nas.cli import app
    from nas.evaluate import contention
    from tests.conftest import TINY_SPACE

    line = "warning: this machine is busy: 1.9 of 2 cores in use by other processes; etc"
    monkeypatch.setattr(contention, "busy_warning", lambda: line)
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    bad = "sqlite:////dev/null/nas.db"  # fails after the warning, before any work
    for args in (["search", str(tmp_path / "tiny.yaml"), "--budget", "1trials"],
                 ["resume", "nothing-1"]):
        result = CliRunner().invoke(app, [*args, "--storage", bad])
        assert result.exit_code != 0
        assert " ".join(result.output.split()).startswith(line), result.output
