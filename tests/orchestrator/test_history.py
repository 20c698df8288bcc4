"""nas's tables are the strategy's single truth: every trial row holds what the strategy decided,
a resume rebuilds the strategy from them (and continues its stream), the database's Optuna study
is a copy written from them when a session ends (re-measured values included), and a run
stored before decisions were resumes from its Optuna study, which fills them in."""

from __future__ import annotations

import optuna
from sqlalchemy import update

from nas.budget import parse_budget
from nas.orchestrator.history import stored_history
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, resume_search, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, Store
from nas.store.models import TrialRow
from nas.strategies import Complete, Failed
from nas.strategies.base import Replay


def search(text, url, budget):
    return run_search(loads(text, "space.yaml"),
                      SearchOptions(budget=parse_budget(budget), storage=url, threads=1),
                      NullReporter())


def resume(name, url, budget):
    return resume_search(name, SearchOptions(budget=parse_budget(budget), storage=url,
                                             threads=1), NullReporter())


def test_every_trial_row_holds_the_strategys_decisions(tmp_path, tiny_space_text):
    url = f"sqlite:///{tmp_path}/nas.db"
    outcome = search(tiny_space_text, url, "3trials")
    store = Store(url)
    run = store.run(outcome.run_name)
    space = loads(tiny_space_text, "space.yaml")

    for number, decision in store.decisions(run.id):
        trial = store.trial(run.id, number)
        assert decision.values  # what the sampler chose, by decision name
        assert space.sample(Replay(decision.values)).config_hash == trial.config_hash
        assert "NSGAIISampler:generation" in decision.state  # NSGA-II's own state
    history = stored_history(store, run)
    assert [t.number for t in history] == list(range(len(history)))
    assert all(isinstance(t.outcome, Complete) for t in history
               if store.trial(run.id, t.number).state == COMPLETE)


def test_the_optuna_study_is_a_copy_with_the_remeasured_values(tmp_path, tiny_space_text):
    url = f"sqlite:///{tmp_path}/nas.db"
    outcome = search(tiny_space_text, url, "3trials")  # remeasure: 2 (the default)
    store = Store(url)
    trials = store.trials(outcome.run_name)
    assert any("latency_ms_initial" in (t.metrics or {}) for t in trials)  # re-measured
    study = optuna.load_study(study_name=outcome.run_name, storage=url)
    assert len(study.trials) == len(trials)
    for trial, frozen in zip(trials, study.trials, strict=True):
        assert frozen.number == trial.number
        if trial.state == COMPLETE:
            assert frozen.values == [trial.values["accuracy"], trial.values["latency_ms"]]


def test_resume_continues_the_stream_an_uninterrupted_search_draws(tmp_path, tiny_space_text):
    text = tiny_space_text.replace("strategy: nsga2", "strategy: random")
    straight = search(text, f"sqlite:///{tmp_path}/a.db", "5trials")
    url = f"sqlite:///{tmp_path}/b.db"
    first = search(text, url, "2trials")
    resume(first.run_name, url, "5trials")
    expected = [t.config_hash for t in Store(f"sqlite:///{tmp_path}/a.db").trials(
        straight.run_name)]
    assert [t.config_hash for t in Store(url).trials(first.run_name)] == expected


def test_a_run_stored_before_decisions_resumes_from_its_optuna_study(tmp_path,
                                                                     tiny_space_text):
    url = f"sqlite:///{tmp_path}/nas.db"
    first = search(tiny_space_text, url, "2trials")
    store = Store(url)
    run = store.run(first.run_name)
    before = dict(store.decisions(run.id))
    with store.transaction() as s:  # as nas < 0.6 stored trials: the study alone knew
        s.execute(update(TrialRow).values(decisions=None, strategy_state=None))
    assert stored_history(store, run) is None
    again = resume(first.run_name, url, "4trials")
    assert again.status == "finished"
    after = dict(Store(url).decisions(run.id))
    assert {n: after[n] for n in before} == before  # filled back from the Optuna study
    assert all(d is not None for d in after.values()) and len(after) >= 4


def test_a_number_never_stored_is_an_interrupted_entry(tmp_path, tiny_space_text):
    url = f"sqlite:///{tmp_path}/nas.db"
    first = search(tiny_space_text, url, "2trials")
    store = Store(url)
    run = store.run(first.run_name)
    last = store.trials(run.id)[-1]
    with store.transaction() as s:  # a proposal interrupted while sampling leaves a gap
        s.execute(update(TrialRow).where(TrialRow.number == last.number)
                  .values(number=last.number + 1))
    history = stored_history(store, run)
    assert [t.number for t in history] == list(range(last.number + 2))
    assert history[last.number].outcome == Failed("interrupted", "sampling it was interrupted")
    again = resume(first.run_name, url, "4trials")
    assert again.status == "finished"
    numbers = [t.number for t in Store(url).trials(run.id)]
    assert numbers[-1] == len(numbers)  # continues after the gap, never reuses its number


KILL_AFTER_STORE = """\
import os, signal, sys
from nas.budget import parse_budget
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.strategies import Complete
from nas.strategies.base import Strategy

real_tell = Strategy.tell

def tell(self, number, outcome):  # the driver dies after storing trial 1, before telling it
    if number == 1 and isinstance(outcome, Complete):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_tell(self, number, outcome)

Strategy.tell = tell
if __name__ == "__main__":  # workers are spawned: they import this file too
    text = open(sys.argv[1]).read()
    run_search(loads(text, "space.yaml"), SearchOptions(
        budget=parse_budget("3trials"), storage=sys.argv[2], threads=1, workers=1, name="k"),
        NullReporter())
"""


def test_a_driver_killed_between_storing_and_telling_loses_nothing(tmp_path, tiny_space_text):
    """Trial 1 is COMPLETE in nas's tables but was never told to the strategy: the resumed
    strategy, rebuilt from the tables, knows it with its values, and it is not trained again."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    text = tiny_space_text.replace("strategy: nsga2", "strategy: random")
    (tmp_path / "space.yaml").write_text(text)
    (tmp_path / "kill.py").write_text(KILL_AFTER_STORE)
    url = f"sqlite:///{tmp_path}/nas.db"
    root = Path(__file__).resolve().parents[2]
    died = subprocess.run([sys.executable, str(tmp_path / "kill.py"), str(tmp_path / "space.yaml"),
                           url], env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root)),
                          capture_output=True, text=True, timeout=300)
    assert died.returncode == -9, died.stderr
    store = Store(url)
    stored = store.trial("k", 1)
    assert stored.state == COMPLETE
    again = resume("k", url, "4trials")
    assert again.status == "finished"
    store = Store(url)
    history = stored_history(store, store.run("k"))
    now = store.trial("k", 1)  # its latency may have been re-measured at the resumed end
    assert now.state == COMPLETE and now.values["accuracy"] == stored.values["accuracy"]
    assert history[1].outcome == Complete([now.values["accuracy"], now.values["latency_ms"]])
    trials = store.trials("k")
    assert [t.number for t in trials] == list(range(len(trials)))  # no gap, no reuse
    assert sum(t.config_hash == stored.config_hash and t.state == COMPLETE
               for t in trials) == 1  # not trained again
