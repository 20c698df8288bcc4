"""A worker killed mid-segment under multi-fidelity: the trial is retried from the rung it
reached (its checkpoint), not from step 0, and every attempt is charged once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import optuna

from nas.store import COMPLETE, RUNNING
from tests.orchestrator.test_faults import FIXED_SPACE, ledger_notes, search

# One candidate, two rungs: 500 steps, then on to 1500 (a few seconds at one thread).
FIDELITY_SPACE = FIXED_SPACE.replace("RETRIES", "1").replace(
    "retries: 1}", "retries: 1, fidelity: {min_steps: 500, reduction: 3}}")


def kill_workers_in_second_segment(db_path, delay: float = 1.0) -> threading.Thread:
    """Once trial 0 has recorded its first rung (it is RUNNING with values, promoted on), wait
    `delay` seconds into the next segment and SIGKILL every worker process, once."""
    from nas.store import Store

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if not os.path.exists(db_path):
                continue
            try:
                trials = Store(f"sqlite:///{db_path}", create=False).trials("fixed-1")
            except Exception:  # the run is not created yet
                continue
            if trials and trials[0].state == RUNNING and trials[0].values:
                break
        time.sleep(delay)
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


def test_a_worker_lost_at_the_second_rung_resumes_from_the_first(tmp_path):
    assert "fidelity: {min_steps: 500" in FIDELITY_SPACE
    killer = kill_workers_in_second_segment(tmp_path / "nas.db")
    outcome, store = search(FIDELITY_SPACE, tmp_path)
    killer.join(timeout=5)
    [trial] = store.trials(outcome.run_name)
    assert trial.state == COMPLETE, trial.error
    assert trial.retries == 1
    notes = [(n, note) for n, note, _ in ledger_notes(store, outcome.run_name)]
    assert notes == [(0, "rung"), (0, "lost"), (0, "complete")]
    steps = sorted({step for step, _, _ in store.curve(outcome.run_name, 0)})
    assert steps[0] <= 500 and steps[-1] == 1500
    # the retry started from the rung-500 checkpoint: the completing segment logged steps
    # 510..1500 only (a restart from scratch would have logged 10..500 a second time)
    losses = [step for step, name, _ in store.curve(outcome.run_name, 0) if name == "train_loss"]
    assert len(losses) == len(set(losses)) and max(losses) == 1500
    study = optuna.load_study(study_name=outcome.run_name, storage=store.url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
