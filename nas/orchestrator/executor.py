"""Executors run trials away from the driver. `LocalExecutor`: worker processes on this machine.

Contract (shared with the Ray executor to come): `submit(request) -> Future[WorkerOutput]`,
`shutdown()`. Workers are stateless compute: they receive a pickled TrialRequest, build, train
and measure, and return plain data; they never touch the database. A worker that dies (killed,
out of memory, a segfault in native code) fails the futures it held with a `WorkerLost` error
and the pool is rebuilt, so the search goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from nas.evaluate.trial import TrialRequest, TrialResult


class WorkerLost(RuntimeError):
    """The process running a trial died before returning."""


class TrialFailed(RuntimeError):
    """A trial raised inside its worker. Carries the original 'Type: message' and the worker's
    traceback as plain strings, so it always pickles back to the driver (an exception class
    with a custom __init__ may not, and an unpicklable result breaks the whole pool)."""

    def __init__(self, message: str, worker_traceback: str = "") -> None:
        super().__init__(message, worker_traceback)
        self.message, self.worker_traceback = message, worker_traceback

    def __str__(self) -> str:
        return self.message


class TrialOutOfMemory(TrialFailed):
    """A trial ran out of device memory in its worker (a CUDA `torch.OutOfMemoryError`, or a
    CPU allocation that failed): the candidate is too big for the device, not broken. The
    driver records it INFEASIBLE; the worker stays usable."""


# Words of a RuntimeError from a failed allocation (CPU allocator, or CUDA in older torch).
_OOM_WORDS = ("out of memory", "can't allocate memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says an allocation failed on the device."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _OOM_WORDS)


def worker_failure(exc: BaseException) -> TrialFailed:
    """What a worker sends back for a trial that raised: TrialOutOfMemory for a failed
    allocation (after freeing the CUDA cache, so the next trial starts clean), else
    TrialFailed; both carry 'Type: message' and the traceback as plain strings."""
    message, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    if not is_out_of_memory(exc):
        return TrialFailed(message, trace)
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return TrialOutOfMemory(message, trace)


@dataclass(frozen=True)
class WorkerOutput:
    result: TrialResult
    worker: str  # e.g. "pid 4242"
    seconds: float  # wall time of the trial inside the worker: what the budget is charged


def _init_worker(num_threads: int) -> None:
    import torch

    # Ctrl-C reaches the whole process group; the driver alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(num_threads)


def _run_in_worker(request: TrialRequest) -> WorkerOutput:
    from nas.evaluate.trial import run_trial

    start = time.perf_counter()
    try:
        result = run_trial(request)
    except Exception as exc:
        raise worker_failure(exc) from None
    return WorkerOutput(result, f"pid {os.getpid()}", time.perf_counter() - start)


def default_threads(workers: int) -> int:
    """CPU threads per worker: the machine's cores shared evenly, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class LocalExecutor:
    """`workers` spawned processes, each with `threads` torch threads (fixed, for fair timing)."""

    def __init__(self, workers: int = 1, threads: int | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.threads = threads or default_threads(workers)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads,),
        )

    def submit(self, request: TrialRequest) -> Future:
        """Run `request` on a free worker; the future resolves to a WorkerOutput."""
        try:
            return self._wrap(self._pool.submit(_run_in_worker, request))
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._wrap(self._pool.submit(_run_in_worker, request))

    def _wrap(self, inner: Future) -> Future:
        """Translate a broken pool into WorkerLost and rebuild the pool for later trials."""
        outer: Future = Future()

        def relay(done: Future) -> None:
            exc = done.exception()
            if isinstance(exc, BrokenProcessPool):
                outer.set_exception(WorkerLost(
                    "the worker process died during the trial (killed, out of memory, or a "
                    "crash in native code)"))
            elif exc is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(done.result())

        inner.add_done_callback(relay)
        return outer

    def heal(self) -> None:
        """Replace a broken pool (call after a WorkerLost); a no-op while the pool is healthy."""
        if getattr(self._pool, "_broken", False):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the workers. cancel=False waits for running trials; cancel=True drops queued
        ones and terminates the worker processes at once (their trials are lost)."""
        if cancel:
            # ProcessPoolExecutor has no public way to stop running work before Python 3.14.
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)
