"""Optuna studies survive pickling whatever their sampler holds (Optuna 5.1's NSGA-II keeps a
thread lock), and the restored study continues the very same sequence of suggestions."""

from __future__ import annotations

import pickle
import threading

import optuna
import pytest

from nas.strategies import pickling
from nas.strategies.optuna_strategy import STRATEGIES, create_study


def _step(study: optuna.Study) -> float:
    trial = study.ask()
    x, y = trial.suggest_float("x", 0, 1), trial.suggest_int("y", 0, 9)
    study.tell(trial, [x + y, x * y])
    return x + y


class LockingSampler(optuna.samplers.RandomSampler):
    """A sampler holding both kinds of thread lock, as third-party samplers may."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self.lock, self.rlock = threading.Lock(), threading.RLock()

    def sample_independent(self, study, trial, name, distribution):
        with self.lock, self.rlock:
            return super().sample_independent(study, trial, name, distribution)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_restored_study_continues_the_same_suggestions(strategy):
    study = create_study("s", ["maximize", "minimize"], strategy, seed=3, population_size=4)
    for _ in range(6):
        _step(study)
    copy = pickling.loads(pickling.dumps(study))
    assert len(copy.trials) == 6
    assert [_step(copy) for _ in range(6)] == [_step(study) for _ in range(6)]


def test_locks_come_back_new_and_usable():
    sampler = LockingSampler(seed=1)
    with pytest.raises(TypeError):
        pickle.dumps(sampler)  # what Tune met before: plain pickle refuses a lock
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    _step(study)
    copy = pickling.loads(pickling.dumps(study))
    assert copy.sampler.lock is not sampler.lock
    assert isinstance(copy.sampler.rlock, type(threading.RLock()))
    assert [_step(copy) for _ in range(3)] == [_step(study) for _ in range(3)]


def test_a_live_trial_still_points_into_its_study():
    study = create_study("s", ["maximize", "minimize"], "nsga2", seed=0, population_size=4)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    copy_study, copy_trial = pickling.loads(pickling.dumps((study, trial)))
    copy_study.tell(copy_trial, [1.0, 2.0])
    assert copy_study.trials[0].state == optuna.trial.TrialState.COMPLETE
