"""nas.search and nas.resume (nas/session.py), the Python entry point, and the README's example
of it, run as written: real (tiny) searches, each a few seconds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nas
from nas.errors import BudgetError, NasError, SpaceError
from nas.store import COMPLETE
from nas.store.api import RunResults

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/nas.db"


def tiny(**kwargs):
    """The keywords every search here uses: 2 trials, 1 thread, nothing printed."""
    return {"budget": "2trials", "threads": 1, "progress": "off", **kwargs}


def space_forms(space_file: Path) -> dict[str, object]:
    text = space_file.read_text()
    return {"path": space_file, "path text": str(space_file), "yaml text": text,
            "dict": yaml.safe_load(text), "SearchSpace": nas.load(space_file)}


@pytest.mark.parametrize("form", ["path", "path text", "yaml text", "dict", "SearchSpace"])
def test_every_form_of_space_searches_and_returns_the_runs_results(form, tiny_space_file, url):
    run = nas.search(space_forms(tiny_space_file)[form], storage=url, **tiny())
    assert isinstance(run, RunResults)
    assert run.name == "tiny-1" and run.record.status == "finished"
    trials = run.trials()
    assert len(trials) == 2 and {t.state for t in trials} == {COMPLETE}
    assert run.pareto() and all(t.pareto for t in run.pareto())
    assert run.trial(0).values["accuracy"] >= 0
    frame = run.to_pandas()
    assert list(frame.index) == [0, 1] and "latency_ms" in frame.columns
    assert run.record.strategy == "nsga2" and run.record.budget == "2trials"


def test_strategy_override_is_recorded_and_kept_by_resume(tiny_space_file, url):
    run = nas.search(tiny_space_file, storage=url, strategy="random", seed=3, name="rnd",
                     **tiny())
    assert run.name == "rnd" and run.record.strategy == "random" and run.record.seed == 3
    stored = yaml.safe_load(run.record.space_text)  # the space stored is the one searched
    assert stored["search"]["strategy"] == "random"
    assert stored["task"] == yaml.safe_load(tiny_space_file.read_text())["task"]
    again = nas.resume("rnd", storage=url, budget="3trials", threads=1, progress="off")
    assert again.record.strategy == "random" and again.record.status == "finished"
    assert len(again.trials(COMPLETE)) == 3 and again.record.budget == "3trials"


def test_the_spaces_own_strategy_leaves_its_text_as_written(tiny_space_file):
    from nas.session import _with_strategy

    space = nas.load(tiny_space_file)
    assert _with_strategy(space, "nsga2") is space  # comments and layout kept
    changed = _with_strategy(space, "tpe")
    assert changed.strategy == "tpe" and changed.path == space.path
    assert changed.space_hash != space.space_hash


def test_resume_continues_a_run_to_a_larger_budget_with_storage_from_the_environment(
        tiny_space_text, url, monkeypatch):
    monkeypatch.setenv("NAS_STORAGE", url)
    first = nas.search(tiny_space_text, **tiny())
    assert first.store.url == url
    again = nas.resume(first.name, budget="4trials", threads=1, progress="off")
    numbers = [t.number for t in again.trials()]
    assert numbers == list(range(len(numbers))) and len(again.trials(COMPLETE)) >= 3
    assert again.record.status == "finished" and "4 of 4 trials" in again.record.message
    assert first.record.status == "finished"  # a snapshot: the earlier object is unchanged


def test_an_interrupted_search_returns_its_results(tiny_space_file, url, monkeypatch):
    """The first Ctrl-C (here sent when trial 0 completes) stops new trials; the call returns
    the run, interrupted, with what finished."""
    import nas.session
    from nas.orchestrator.progress import NullReporter

    class CtrlC(NullReporter):
        def trial_complete(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(nas.session, "_reporter", lambda progress: CtrlC())
    run = nas.search(tiny_space_file, storage=url, **tiny(budget="20trials", workers=1))
    assert run.record.status == "interrupted"
    # one worker: trial 0 completed, then the drain started nothing more
    assert [t.number for t in run.trials(COMPLETE)] == [0]
    assert len(run.trials()) == 1


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"strategy": "nsga3"}, NasError, "unknown strategy 'nsga3' (did you mean 'nsga2'?)"),
    ({"budget": "6 bananas"}, BudgetError, "cannot read budget '6 bananas'"),
    ({"budget": 6}, BudgetError, "budget must be text"),
    ({"budget": None}, BudgetError, "no budget: pass budget="),
    ({"progress": "loud"}, NasError, "unknown progress 'loud'"),
    ({"workers": 0}, NasError, "workers must be a whole number of at least 1"),
    ({"keep_weights": "some"}, NasError, "unknown keep_weights 'some'"),
    ({"storage": 5}, NasError, "storage must be a database URL"),
])
def test_bad_arguments_raise_one_line_before_anything_is_written(
        kwargs, error, words, tiny_space_file, url, tmp_path):
    with pytest.raises(error) as caught:
        nas.search(tiny_space_file, **{**tiny(storage=url), **kwargs})
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert not (tmp_path / "nas.db").exists()


@pytest.mark.parametrize(("space", "words"), [
    ("missing.yaml", "missing.yaml: file not found"),
    ("name: tiny\n", "<string>:1:1: task: required key is missing"),
    ({"name": "tiny", "task": {"kind": "mqar"}, "model": {"d_model": object()}},
     "<dict>: a value of type object cannot be written as YAML"),
    (42, "space must be a path, YAML text, a dict or a SearchSpace, not int"),
])
def test_bad_spaces_raise_one_line(space, words, url, tmp_path):
    with pytest.raises(NasError) as caught:
        nas.search(space, storage=url, **tiny())
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "nas.db").exists()


def test_a_dict_with_a_bad_key_names_it_with_its_place(tiny_space_file, url):
    data = yaml.safe_load(tiny_space_file.read_text())
    data["training"]["steps"] = -1
    with pytest.raises(SpaceError, match=r"^<dict>:\d+:\d+: training.steps: "):
        nas.search(data, storage=url, **tiny())


def test_resume_of_an_unknown_run_is_one_line(url, tiny_space_text):
    nas.search(tiny_space_text, storage=url, **tiny(budget="1trials"))
    with pytest.raises(NasError) as caught:
        nas.resume("no-such-run", storage=url, progress="off")
    assert "no-such-run" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("progress", ["quiet", "off"])
def test_the_clis_notes_go_to_stderr_unless_progress_is_off(progress, tiny_space_file, url,
                                                             monkeypatch, capsys):
    import torch

    import nas.evaluate.contention
    import nas.orchestrator.search

    def started(space, options, reporter):
        raise NasError("search started")

    monkeypatch.setattr(nas.evaluate.contention, "busy_warning", lambda: "warning: busy here")
    monkeypatch.setattr(nas.orchestrator.search, "run_search", started)
    with pytest.raises(NasError, match="search started"):
        nas.search(tiny_space_file, storage=url, budget="1gpuh", progress=progress)
    err = capsys.readouterr().err
    if progress == "off":
        assert err == ""
    else:
        assert "warning: busy here" in err
        assert ("no GPU here" in err) is not torch.cuda.is_available()


def test_nas_search_and_resume_load_nothing_heavy_until_called():
    code = ("import sys, nas; nas.search, nas.resume, nas.BudgetError, nas.StoreError; "
            "print([m for m in ('torch', 'optuna', 'ray', 'triton', 'pandas', 'numpy') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
    assert {"search", "resume"} <= set(nas.__all__)


# ------------------------------------------------------------------------------------------------
# The README's example, as written
# ------------------------------------------------------------------------------------------------

README_SETTINGS = 'SPACE, BUDGET, MORE = "examples/quickstart.yaml", "6m", "10m"'


def readme_search_example() -> str:
    """The README's Python block that calls nas.search (the one under "Python API")."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.M | re.S)
    found = [b for b in blocks if "nas.search(" in b]
    assert len(found) == 1, "the README should hold one example of nas.search"
    return found[0]


def test_the_readme_example_runs_as_written(tmp_path, tiny_space_text, monkeypatch, capsys):
    """Everything but the settings line runs verbatim, in a fresh folder (its default database
    ./nas.db), with the tiny space and a budget of trials in place of the quickstart's."""
    code = readme_search_example()
    settings = [line for line in code.splitlines() if line.startswith("SPACE, BUDGET, MORE =")]
    assert settings and settings[0].startswith(README_SETTINGS), settings
    (tmp_path / "tiny.yaml").write_text(tiny_space_text)
    code = code.replace(settings[0], 'SPACE, BUDGET, MORE = "tiny.yaml", "2trials", "3trials"')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    namespace: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "tiny-1 finished" in out
    assert "trials complete," in out and "on the front" in out
    run = namespace["run"]
    assert isinstance(run, RunResults) and run.record.budget == "3trials"
    assert len(run.trials(COMPLETE)) == 3
    assert (tmp_path / "nas.db").exists()
