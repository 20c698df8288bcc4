"""The executor contract: how the search driver runs trials away from itself, and how they fail.

An `Executor` takes a `TrialRequest` and returns a `Future[WorkerOutput]`; it keeps `workers`
trials in flight for the driver and gives each `threads` torch threads. Two implement it:
`nas.orchestrator.executor.LocalExecutor` (worker processes on this machine) and
`nas.orchestrator.ray_executor.RayExecutor` (Ray tasks on a cluster). The search loop
(`nas.orchestrator.loop`) knows only this contract.

A future raises `TrialFailed` when the trial raised, `TrialOutOfMemory` (a TrialFailed) when it
ran out of device memory, and `WorkerLost` when the process running it died (or the driver
cancelled it). Workers are stateless compute: they receive a pickled TrialRequest, build, train
and measure, and return plain data; they never touch the database. They import user code (a
python task, a mixer named by import path) only for a request that carries the user's
permission, `TrialRequest.allow_code` (set from the space the driver loaded with
`--allow-code`), never from the environment (`nas.evaluate.trial.refuse_user_code`).
"""

from __future__ import annotations

import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from nas.evaluate.trial import TrialRequest, TrialResult
from nas.failures import ERROR, OOM, classify


@runtime_checkable
class Executor(Protocol):
    """Runs trials for the search driver (see the module docstring for how futures fail).

    `submit`, `cancel` and `shutdown` may be called from any thread; a future's callbacks may
    run on a thread of the executor's own."""

    workers: int  # trials the driver keeps in flight on it
    threads: int  # torch threads each trial gets

    def submit(self, request: TrialRequest) -> Future[WorkerOutput]:
        """Start (or queue) `request`; the future resolves to its WorkerOutput or raises
        TrialFailed / TrialOutOfMemory / WorkerLost."""
        ...

    def cancel(self, future: Future) -> bool:
        """Stop the trial behind `future` (its future then raises WorkerLost); False if it had
        already ended."""
        ...

    def heal(self) -> None:
        """Make the executor usable again after a WorkerLost (a no-op where dead workers are
        replaced by themselves)."""
        ...

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the workers: cancel=False lets the trials in flight finish first, cancel=True
        stops them at once (their futures raise WorkerLost, or are cancelled if queued)."""
        ...


class WorkerLost(RuntimeError):
    """The process running a trial died before returning."""


class TrialFailed(RuntimeError):
    """A trial raised inside its worker. Carries the original 'Type: message', the worker's
    traceback and the failure class (nas.failures, decided in the worker where the exception
    object exists) as plain strings, so it always pickles back to the driver (an exception
    class with a custom __init__ may not)."""

    def __init__(self, message: str, worker_traceback: str = "", failure: str = ERROR) -> None:
        super().__init__(message, worker_traceback, failure)
        self.message, self.worker_traceback, self.failure = message, worker_traceback, failure

    def __str__(self) -> str:
        return self.message


class TrialOutOfMemory(TrialFailed):
    """A trial ran out of device memory in its worker (a CUDA `torch.OutOfMemoryError`, or a
    CPU allocation that failed): the candidate is too big for the device, not broken. The
    driver records it INFEASIBLE; the worker stays usable."""

    def __init__(self, message: str, worker_traceback: str = "", failure: str = OOM) -> None:
        super().__init__(message, worker_traceback, failure)


def worker_failure(exc: BaseException) -> TrialFailed:
    """What a worker sends back for a trial that raised: TrialOutOfMemory for a failed
    allocation (after freeing the CUDA cache, so the next trial starts clean), else
    TrialFailed with the exception's failure class; both carry 'Type: message' and the
    traceback as plain strings."""
    message, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    failure = classify(exc)
    if failure != OOM:
        return TrialFailed(message, trace, failure)
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return TrialOutOfMemory(message, trace)


@dataclass(frozen=True)
class WorkerOutput:
    result: TrialResult
    worker: str  # e.g. "pid 4242 cuda:0"
    # device-seconds the budget is charged: the trial's wall time inside the worker, times
    # the devices it held (RayExecutor with num_gpus_per_trial > 1; one elsewhere)
    seconds: float
