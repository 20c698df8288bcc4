"""The latency-measurement worker of `search.measure`: one process on its own device.

With `search: {measure: {device: cpu, threads: 1}}` latency objectives are timed here instead
of in the training workers: one spawned process, `threads` torch threads, `device` for every
model, running one request at a time, so measurements never overlap one another. Training
workers then train only; the driver sends a trial's latency request here when the trial starts
and joins the two results when both are in (`join`), so training never waits for the timing.

Contract (a subset of `nas.orchestrator.executor_base.Executor`): `submit(request) ->
Future[WorkerOutput]` for a request that `run_trial` answers with latency only (`latency_only`
is forced on, `device` and `num_threads` are this worker's), `heal()`, `shutdown(cancel)`. A dead
process fails the futures it held with WorkerLost; the next `submit` starts a fresh one.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from nas.evaluate.trial import TrialRequest
from nas.orchestrator.executor_base import WorkerLost, WorkerOutput, worker_failure


def _start(threads: int) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver alone decides what stops
    torch.set_num_threads(threads)


def _measure(request: TrialRequest) -> WorkerOutput:
    from nas.evaluate.trial import run_trial

    start = time.perf_counter()
    try:
        result = run_trial(request)
    except Exception as exc:
        raise worker_failure(exc) from None
    return WorkerOutput(result, f"pid {os.getpid()}", time.perf_counter() - start)


class Measurer:
    """One measurement process on `device` ("cpu", "cuda", "cuda:N") with `threads` threads."""

    workers = 1

    def __init__(self, device: str = "cpu", threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.device, self.threads = device, threads
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=(self.threads,))

    def submit(self, request: TrialRequest) -> Future:
        """Queue `request`'s latency measurement; the future resolves to a WorkerOutput."""
        request = replace(request, latency_only=True, device=self.device,
                          num_threads=self.threads)
        try:
            inner = self._pool.submit(_measure, request)
        except BrokenProcessPool:
            self.heal()
            inner = self._pool.submit(_measure, request)
        outer: Future = Future()

        def relay(done: Future) -> None:
            exc = _exception(done)
            if isinstance(exc, BrokenProcessPool | CancelledError):
                outer.set_exception(WorkerLost(
                    "the latency-measurement process died (killed, out of memory, or a crash "
                    "in native code)"))
            elif exc is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(done.result())

        inner.add_done_callback(relay)
        return outer

    def heal(self) -> None:
        """Replace a dead process; a no-op while it is healthy."""
        if getattr(self._pool, "_broken", False):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the process: cancel=False waits for queued measurements, cancel=True drops them
        and terminates it at once."""
        if cancel:
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)


def _exception(future: Future) -> BaseException | None:
    try:
        return future.exception()
    except CancelledError as exc:
        return exc


def join(training: Future, latency: Future) -> Future:
    """One future for a trial trained in one place and timed in another.

    It resolves to the training output with the latency metrics, the measuring device's
    fingerprint and its fresh measurements put in, charged the seconds of both. A training
    failure resolves it at once (the measurement may still run; its result is dropped); a
    measurement failure only once training is done, so a worker is never counted free early.
    """
    outer: Future = Future()
    lock = threading.Lock()

    def settle(_: Future) -> None:
        with lock:
            if outer.done() or not training.done():
                return
            failed = _exception(training)
            if failed is None and latency.done():
                failed = _exception(latency)
                if failed is None:
                    outer.set_result(_merge(training.result(), latency.result()))
                    return
            if failed is not None:
                outer.set_exception(failed)

    training.add_done_callback(settle)
    latency.add_done_callback(settle)
    return outer


def _merge(trained: WorkerOutput, timed: WorkerOutput) -> WorkerOutput:
    result = replace(trained.result, metrics={**trained.result.metrics, **timed.result.metrics},
                     fingerprint=timed.result.fingerprint, measured=timed.result.measured)
    return WorkerOutput(result, trained.worker, trained.seconds + timed.seconds)
