"""Resuming runs: after a clean stop, after the driver was SIGKILLed mid-trial, and never twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from nas.budget import parse_budget
from nas.errors import NasError, StoreError
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, resume_search, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, DUPLICATE, FAIL, RUNNING, Store


def charged(trials):
    return [t for t in trials if t.state != DUPLICATE]


def test_resume_continues_a_finished_run_with_a_larger_budget(tmp_path, tiny_space_text):
    url = f"sqlite:///{tmp_path}/nas.db"
    first = run_search(loads(tiny_space_text, "space.yaml"),
                       SearchOptions(budget=parse_budget("2trials"), storage=url, threads=1),
                       NullReporter())
    again = resume_search(first.run_name, SearchOptions(budget=parse_budget("4trials"),
                                                        storage=url, threads=1), NullReporter())
    assert again.status == "finished" and "4 of 4 trials" in again.message
    store = Store(url)
    trials = store.trials(first.run_name)
    assert len(charged(trials)) == 4
    assert [t.number for t in trials] == list(range(len(trials)))  # numbering continues
    study = optuna.load_study(study_name=first.run_name, storage=url)
    assert len(study.trials) == len(trials)
    run = store.run(first.run_name)
    assert run.budget == "4trials" and run.elapsed_seconds > 0


class LastState(NullReporter):
    """Keeps the state the search reported at its stop."""

    def stop(self, state):
        self.state = state


def test_a_resumed_search_reports_the_runs_counts_and_a_failed_start_marks_the_run(
        tmp_path, tiny_space_text, monkeypatch):
    url = f"sqlite:///{tmp_path}/nas.db"
    first = run_search(loads(tiny_space_text, "space.yaml"),
                       SearchOptions(budget=parse_budget("2trials"), storage=url, threads=1),
                       NullReporter())
    store = Store(url)
    run = store.run(first.run_name)  # a trial a dead driver left running: failed on resume
    store.start_trial(run.id, 99, store.trial(run.name, 0).arch, worker="gone")
    reporter = LastState()
    resume_search(first.run_name, SearchOptions(budget=parse_budget("3trials"), storage=url,
                                                threads=1), reporter)
    trials = Store(url).trials(first.run_name)
    assert reporter.state.complete == sum(t.state == COMPLETE for t in trials)
    assert reporter.state.duplicates == sum(t.state == DUPLICATE for t in trials)
    assert reporter.state.failed == sum(t.state == FAIL for t in trials) >= 1

    import nas.orchestrator.workers as workers

    def unreachable(space, options):
        raise NasError("cannot reach a Ray cluster at 127.0.0.1:1")

    monkeypatch.setattr(workers, "make_executor", unreachable)
    with pytest.raises(NasError, match="cannot reach"):
        resume_search(first.run_name, SearchOptions(budget=parse_budget("4trials"), storage=url,
                                                     threads=1), NullReporter())
    run = Store(url).run(first.run_name)
    assert run.status == "failed" and "cannot reach a Ray cluster" in run.message


def test_resume_after_the_driver_was_killed(tmp_path, tiny_space_text):
    (tmp_path / "space.yaml").write_text(tiny_space_text.replace("steps: 20", "steps: 300"))
    url = f"sqlite:///{tmp_path}/nas.db"
    driver = subprocess.Popen(
        [sys.executable, "-m", "nas", "search", "space.yaml", "--budget", "50trials",
         "--storage", url, "--name", "crashy"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    store = Store(url, create=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                states = [t.state for t in store.trials("crashy")]
            except StoreError:
                continue
            if COMPLETE in states and states[-1] == RUNNING:
                break
        else:
            pytest.fail("the search never got going")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its workers, mid-trial
        driver.wait()
    crashed = store.run("crashy")
    assert crashed.status == "running" and store.trials("crashy")[-1].state == RUNNING
    done_before = len(charged(store.trials("crashy")))

    out = subprocess.run(
        [sys.executable, "-m", "nas", "resume", "crashy", "--budget", f"{done_before + 1}trials",
         "--storage", url], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    trials = store.trials("crashy")
    lost = [t for t in trials if t.error and t.error.startswith("lost")]
    assert len(lost) == 1 and lost[0].state == FAIL
    assert trials[-1].state in (COMPLETE, FAIL) and store.run("crashy").status == "finished"
    study = optuna.load_study(study_name="crashy", storage=url)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    # the lost trial's configuration was trained again (the one trial the budget left), and
    # every trial's device-seconds are what the ledger charged it
    again = trials[-1]
    assert again.number > lost[0].number and again.config_hash == lost[0].config_hash
    assert again.state == COMPLETE, again.error
    assert study.trials[again.number].user_attrs["nas:retrain_of"] == lost[0].number
    charged_to = {}
    for entry in store.ledger_entries("crashy"):
        number = entry.trial_number
        charged_to[number] = charged_to.get(number, 0.0) + entry.device_seconds
    for trial in trials:
        assert trial.device_seconds == pytest.approx(charged_to.get(trial.number, 0.0))


def test_a_live_run_is_not_resumed_twice(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/nas.db")
    store.create_run(
        name="live", base_name="x", space_path="s.yaml", space_text="name: x",
        space_hash="h", objectives=[], strategy="tpe", seed=0, budget="1trials",
        budget_unit="trials", budget_amount=1, versions={}, host=os.uname().nodename,
        driver_pid=os.getpid())
    with pytest.raises(StoreError, match="still being searched by process"):
        resume_search("live", SearchOptions(budget=None, storage=store.url), NullReporter())


def test_resume_refuses_a_run_whose_folder_is_a_link(tmp_path, tiny_space_text):
    """A hand-edited setup where the run's artifacts folder links elsewhere: resume would write
    checkpoints through the link, so it stops first, in one line, and writes nothing there."""
    url = f"sqlite:///{tmp_path}/nas.db"
    first = run_search(loads(tiny_space_text, "space.yaml"),
                       SearchOptions(budget=parse_budget("1trials"), storage=url, threads=1),
                       NullReporter())
    store = Store(url)
    folder = store.artifacts_root / store.run_folder(first.run_name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StoreError, match="is a link") as info:
        resume_search(first.run_name, SearchOptions(budget=parse_budget("2trials"),
                                                    storage=url, threads=1), NullReporter())
    assert "\n" not in str(info.value)
    assert list(elsewhere.iterdir()) == []
    assert store.run(first.run_name).status == "finished"
