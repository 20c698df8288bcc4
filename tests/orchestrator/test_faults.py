"""Fault tolerance in the search loop, for real: workers killed with SIGKILL are retried (or not,
with `search.retries: 0`), trials that raise are never retried, and a trial that runs out of
memory inside its worker (a real torch.OutOfMemoryError raised by a user mixer, and a real CPU
allocation failure) is INFEASIBLE and told to Optuna as such."""

from __future__ import annotations

import multiprocessing
import os
import signal
import textwrap
import threading
import time

import optuna
import pytest
from sqlalchemy import select

from nas.budget import parse_budget
from nas.failures import is_out_of_memory
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, FAIL, INFEASIBLE, Store
from nas.store.models import LedgerRow
from tests.searchspace.spaces import space_text

# One candidate (nothing to choose) that trains for a few seconds on one thread.
FIXED_SPACE = textwrap.dedent("""\
    name: fixed
    task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}
    model:
      d_model: 16
      n_layers: 2
      token_mixers:
        short_conv: {kernel_size: 2}
      channel_mixer: {kind: mlp, expansion: 2}
    training: {steps: 1500, batch_size: 8, lr: 3.0e-3}
    objectives:
      - {name: accuracy, goal: maximize}
    search: {strategy: random, seed: 0, retries: RETRIES}
""")


def search(text, tmp_path, budget="1trials", allow_code=False):
    url = f"sqlite:///{tmp_path}/nas.db"
    options = SearchOptions(budget=parse_budget(budget), storage=url, threads=1,
                            allow_code=allow_code)
    space = loads(text, "space.yaml", allow_code=allow_code)
    outcome = run_search(space, options, NullReporter())
    return outcome, Store(url)


def kill_first_worker(delay: float = 1.5) -> threading.Thread:
    """SIGKILL every worker process once the first one is up and `delay` seconds have passed
    (mid-trial: spawning and training take longer); only once."""
    def killer() -> None:
        deadline = time.monotonic() + 60
        while not multiprocessing.active_children() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


def ledger_notes(store: Store, run_name: str) -> list[tuple[int, str, float]]:
    run_id = store.run(run_name).id
    with store.transaction() as s:
        rows = s.scalars(select(LedgerRow).where(LedgerRow.run_id == run_id)
                         .order_by(LedgerRow.id))
        return [(r.trial_number, r.note, r.device_seconds) for r in rows]


def test_a_killed_worker_is_retried_and_the_trial_completes(tmp_path):
    killer = kill_first_worker()
    outcome, store = search(FIXED_SPACE.replace("RETRIES", "1"), tmp_path)
    killer.join(timeout=5)
    [trial] = store.trials(outcome.run_name)
    assert trial.state == COMPLETE, trial.error
    assert trial.retries == 1
    notes = ledger_notes(store, outcome.run_name)
    assert [(n, note) for n, note, _ in notes] == [(0, "lost"), (0, "complete")]
    assert notes[0][2] > 1.0  # the lost attempt ran about `delay` seconds before the kill
    assert trial.device_seconds == pytest.approx(sum(seconds for *_, seconds in notes))
    assert store.ledger(store.run(outcome.run_name).id)[2] == 1  # still one trial charged
    study = optuna.load_study(study_name=outcome.run_name, storage=store.url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]


def test_without_retries_a_killed_worker_fails_its_trial(tmp_path):
    killer = kill_first_worker()
    outcome, store = search(FIXED_SPACE.replace("RETRIES", "0"), tmp_path)
    killer.join(timeout=5)
    [trial] = store.trials(outcome.run_name)
    assert trial.state == FAIL and trial.retries == 0
    assert trial.error.startswith("WorkerLost: the worker process died")
    assert [note for _, note, _ in ledger_notes(store, outcome.run_name)] == ["fail"]


def test_a_trial_that_raises_is_not_retried(tmp_path):
    diverging = FIXED_SPACE.replace("RETRIES", "3").replace("steps: 1500", "steps: 20") \
        .replace("lr: 3.0e-3", "lr: 1.0e+6")
    outcome, store = search(diverging, tmp_path)
    [trial] = store.trials(outcome.run_name)
    assert trial.state == FAIL and "TrialDiverged" in trial.error and trial.retries == 0
    assert [note for _, note, _ in ledger_notes(store, outcome.run_name)] == ["fail"]


MODULE = "nas_test_oom_mixers"
MIXER_SOURCE = '''
import torch
import torch.nn as nn

from nas.blocks.base import TokenMixer


class _Mixer(TokenMixer):
    def __init__(self, d_model, layer_idx):
        super().__init__(d_model, layer_idx)
        self.proj = nn.Linear(d_model, d_model, bias=False)

    def step(self, x, state=None):
        return self.forward(x), state

    def flops_per_token(self, seq_len):
        return 2.0 * self.d_model * self.d_model

    def state_bytes(self, seq_len, dtype=torch.float32):
        return 0


class CudaOom(_Mixer):
    """Raises the error CUDA raises when an allocation does not fit."""

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")


class CpuOom(_Mixer):
    """Really asks the CPU allocator for 2**62 bytes, which it refuses."""

    def forward(self, x):
        scratch = torch.empty(1 << 62, dtype=torch.uint8)
        return self.proj(x) + scratch[:1]
'''


@pytest.fixture
def oom_module(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(MIXER_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path
    return tmp_path


@pytest.mark.parametrize("mixer, words", [
    ("CudaOom", "OutOfMemoryError: CUDA out of memory"),
    ("CpuOom", "can't allocate memory"),
])
def test_out_of_memory_in_the_worker_is_infeasible(oom_module, tmp_path, mixer, words):
    model = f"""\
        d_model: 16
        n_layers: 1
        token_mixers:
          {MODULE}.{mixer}: {{}}
        channel_mixer: {{kind: mlp, expansion: 2}}
    """
    text = space_text(model, "{steps: 5, batch_size: 4, lr: {choice: [0.01, 0.02]}}")
    outcome, store = search(text, tmp_path, budget="2trials", allow_code=True)
    trials = store.trials(outcome.run_name)
    assert [t.state for t in trials] == [INFEASIBLE, INFEASIBLE], [t.error for t in trials]
    for trial in trials:
        assert trial.error.startswith("out of memory: ") and words in trial.error
        assert trial.device_seconds > 0  # charged: it held the device until it failed
    assert [note for _, note, _ in ledger_notes(store, outcome.run_name)] == ["infeasible"] * 2
    assert outcome.status == "finished" and outcome.front == []
    study = optuna.load_study(study_name=outcome.run_name, storage=store.url)
    for frozen in study.trials:
        assert frozen.state == optuna.trial.TrialState.COMPLETE  # placeholders, as infeasible
        assert frozen.system_attrs["constraints:nas_space"] == 1.0


def test_out_of_memory_is_recognised():
    import torch

    with pytest.raises(RuntimeError) as info:
        torch.empty(1 << 62, dtype=torch.uint8)
    assert is_out_of_memory(info.value)
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an allocator's error
