"""`LocalExecutor`: the search's trials in worker processes on this machine.

It implements `nas.orchestrator.executor_base.Executor` (the contract, the failures a future
raises, and what a worker may and may not do are stated there).

Why our own pool rather than `concurrent.futures.ProcessPoolExecutor`:

- isolation: a ProcessPoolExecutor whose worker is killed (SIGKILL, the kernel's OOM killer, a
  segfault in native code) marks itself broken and fails every trial in flight. Here only the
  trial the dead worker ran fails; a fresh process takes its place and the others run on.
- device pinning: worker i holds `devices[i % len(devices)]` (one GPU each by default) for its
  whole life, so trials never share a GPU and CUDA is set up once per worker, not per trial.
- overhead: one pipe per worker and one dispatcher thread in the driver; a trial costs a pickle
  each way and no per-call bookkeeping (`benchmarks/overhead.py` measures it).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing import util as mp_util
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from nas.evaluate.trial import TrialRequest, TrialResult, run_trial
from nas.orchestrator.executor_base import TrialFailed, WorkerLost, WorkerOutput, worker_failure

Runner = Callable[[TrialRequest], TrialResult]


def default_threads(workers: int) -> int:
    """CPU threads per worker: OMP_NUM_THREADS when it is set (the usual way to say how many
    threads a program may use on a shared machine), else the machine's cores shared evenly;
    at least one."""
    from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def default_devices() -> list[str]:
    """Every visible GPU ("cuda:0", "cuda:1", ...), else ["cpu"]. Asks the CUDA driver how many
    devices there are but creates no CUDA context, so spawning workers afterwards is safe."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"]


def default_workers() -> int:
    """One worker per GPU, or a single worker on a machine without one."""
    return len(default_devices())


# -- the worker process ------------------------------------------------------------------------


def _worker_main(conn: Connection, device: str, threads: int, runner: Runner) -> None:
    """A worker's life: set up, say "ready", then run one request at a time until told to stop
    (None) or the driver goes away. Replies are ("ready", pid), ("ok", WorkerOutput) or
    ("error", TrialFailed)."""
    # Ctrl-C reaches the whole process group; the driver alone decides what stops. The worker
    # started with SIGINT ignored (see `_sigint_blocked`); this keeps it so whatever started it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    import torch

    _exit_with_driver()
    torch.set_num_threads(threads)
    if device.startswith("cuda:"):  # its default CUDA device: where stray allocations land
        torch.cuda.set_device(device)
    name = f"pid {os.getpid()} {device}"
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the driver is gone
        except Exception as exc:  # the request did not unpickle here
            conn.send(("error", worker_failure(exc)))
            continue
        if request is None:
            return
        _send_reply(conn, _run_request(runner, replace(request, device=device), name))


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Keep SIGINT from a worker while it starts. A terminal's Ctrl-C reaches the whole process
    group; one arriving while a spawned worker is still importing (before `_worker_main` can
    ignore it) would raise KeyboardInterrupt in multiprocessing's bootstrap: a traceback, a
    dead worker and a lost trial. The driver alone decides what a Ctrl-C stops.

    On the main thread SIGINT is set to SIG_IGN around the start (a few ms): an ignored
    disposition survives fork and exec, and Python then installs no KeyboardInterrupt handler
    in the worker. The calling thread also blocks SIGINT meanwhile, to narrow the chance that
    the driver itself drops a Ctrl-C landing in those ms (another of its threads may still take
    and drop it). Only the main thread may call signal.signal: from another thread (the
    dispatcher respawning a dead worker) nothing here reaches the worker (the spawn does not
    keep the mask, measured on CPython 3.11), and only `_worker_main`'s own SIG_IGN protects
    it, once it runs.
    """
    mask = hasattr(signal, "pthread_sigmask")
    main = threading.current_thread() is threading.main_thread()
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if mask else None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous if previous is not None
                          else signal.default_int_handler)
        if previous_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _exit_with_driver(interval: float = 1.0) -> None:
    """Watch the driver from a daemon thread: once it is gone (even SIGKILLed, with no
    chance to stop us) this worker exits within `interval` seconds instead of training on as
    an orphan."""
    driver = os.getppid()

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="nas-driver-watch", daemon=True).start()


def _run_request(runner: Runner, request: TrialRequest, name: str) -> tuple[str, object]:
    start = time.perf_counter()
    try:
        result = runner(request)
    except Exception as exc:
        return "error", worker_failure(exc)
    return "ok", WorkerOutput(result, name, time.perf_counter() - start)


def _send_reply(conn: Connection, reply: tuple[str, object]) -> None:
    """Send `reply`; one that does not pickle becomes a TrialFailed (send pickles before it
    writes, so nothing half-written reaches the pipe)."""
    try:
        conn.send(reply)
    except (BrokenPipeError, ConnectionResetError):
        raise SystemExit(0) from None  # the driver is gone
    except Exception as exc:
        conn.send(("error", TrialFailed(
            f"the trial's result could not be sent back to the driver: "
            f"{type(exc).__name__}: {exc}", traceback.format_exc())))


# -- the driver side ---------------------------------------------------------------------------


@dataclass
class _Slot:
    """One worker process, as the dispatcher thread sees it (only that thread changes it)."""

    index: int
    device: str
    process: BaseProcess
    conn: Connection
    ready: bool = False  # it has set itself up (imported torch, pinned its device)
    future: Future | None = None  # the trial it runs
    cancelled: bool = False  # the driver stopped it to cancel its trial


def _how_it_died(process: BaseProcess) -> str:
    code = process.exitcode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# Consecutive workers that die before they are set up before the pool stops replacing them.
_START_FAILURES = 3


class LocalExecutor:
    """`workers` long-lived spawned processes, one trial at a time each.

    Worker i holds `devices[i % len(devices)]` for its life (default: `default_devices()`) and
    runs every request as `replace(request, device=<its device>)` with `threads` torch threads
    (default: cores / workers). `runner`, a picklable top-level callable TrialRequest ->
    TrialResult, is what a worker calls (default: `nas.evaluate.trial.run_trial`).

    The workers and a dispatcher thread start at the first `submit` (or `start()`). The
    dispatcher hands each idle worker the next queued request and resolves futures; their
    callbacks run on that thread. `submit`, `cancel` and `shutdown` may be called from
    any thread. A worker that dies fails only its own trial (WorkerLost, naming its pid and how
    it died) and is replaced at once; three in a row dying while they start up break the pool
    (every trial then fails with WorkerLost saying so).
    """

    def __init__(self, workers: int = 1, threads: int | None = None,
                 devices: Sequence[str] | None = None, runner: Runner | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.threads = threads or default_threads(workers)
        self.devices = list(devices) if devices else default_devices()
        self.runner = runner or run_trial
        pickle.dumps(self.runner)  # fail here, not in a worker, if it cannot be sent
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # guards the fields below up to _wake_w
        self._queue: deque[tuple[Future, TrialRequest]] = deque()
        self._cancels: set[Future] = set()
        self._closing: str | None = None  # "wait" or "cancel" once shutdown was called
        self._broken: str | None = None  # why the pool gave up replacing workers
        self._wake_r, self._wake_w = os.pipe()  # submit/cancel/shutdown -> dispatcher
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._start_failures = 0
        self._slots: list[_Slot | None] = [None] * workers
        self._thread: threading.Thread | None = None
        # At interpreter exit, before multiprocessing joins its children: stop ours.
        self._at_exit = mp_util.Finalize(
            self, self.shutdown, kwargs={"cancel": True}, exitpriority=10)

    # -- the public contract -------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the workers now rather than at the first submit (they take a second or two
        to import torch, which the first trial otherwise waits for)."""
        with self._lock:
            self._start_locked()

    def submit(self, request: TrialRequest) -> Future:
        """Queue `request` for the next idle worker; the future resolves to a WorkerOutput."""
        future: Future = Future()
        with self._lock:
            if self._broken is not None:
                future.set_exception(WorkerLost(self._broken))
                return future
            if self._closing is not None:
                raise RuntimeError("cannot submit a trial after the executor was shut down")
            self._start_locked()
            self._queue.append((future, request))
            self._wake_locked()
        return future

    def cancel(self, future: Future) -> bool:
        """Stop the trial behind `future`: a queued one is dropped, a running one's worker is
        terminated and replaced; either way the future raises WorkerLost ("cancelled"). False
        if the trial had already ended."""
        with self._lock:
            queued = next((i for i, (f, _) in enumerate(self._queue) if f is future), None)
            if queued is not None:
                del self._queue[queued]
            elif future.running():
                self._cancels.add(future)
                self._wake_locked()
                return True
            else:
                return False
        future.set_exception(WorkerLost("the trial was cancelled by the driver before it "
                                        "started"))
        return True

    def heal(self) -> None:
        """A no-op, kept for the executor contract: a lost worker is replaced at once."""

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the workers and wait until they are gone. cancel=False lets queued and running
        trials finish first; cancel=True drops queued trials (their futures are cancelled) and
        terminates running ones at once (their futures raise WorkerLost)."""
        with self._lock:
            if cancel or self._closing is None:
                self._closing = "cancel" if cancel else "wait"
            self._wake_locked()
            thread = self._thread
            if thread is None:  # never started: nothing runs
                self._close_wake_locked()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._at_exit.cancel()

    def pids(self) -> list[int]:
        """The process ids of the current workers (for tests and monitoring)."""
        return [slot.process.pid for slot in list(self._slots) if slot is not None]

    # -- worker processes ----------------------------------------------------------------------
    def _start_locked(self) -> None:
        """Spawn the workers and the dispatcher thread, once (call with the lock held)."""
        if self._thread is not None or self._closing is not None:
            return
        self._slots = self._spawn_all()
        self._thread = threading.Thread(target=self._dispatch, name="nas-local-executor",
                                        daemon=True)
        self._thread.start()

    def _spawn_all(self) -> list[_Slot | None]:
        """Start every worker; if one cannot start, stop those already started and raise."""
        slots: list[_Slot | None] = []
        try:
            for index in range(self.workers):
                slots.append(self._spawn(index))
        except BaseException:
            for slot in slots:
                slot.process.kill()
                slot.process.join()
                slot.conn.close()
            raise
        return slots

    def _spawn(self, index: int) -> _Slot:
        device = self.devices[index % len(self.devices)]
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main, args=(theirs, device, self.threads, self.runner),
            name=f"nas-worker-{index}")
        try:
            with _sigint_blocked():
                process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return _Slot(index, device, process, ours)

    def _close_wake_locked(self) -> None:
        if self._wake_w is not None:
            os.close(self._wake_w)
            os.close(self._wake_r)
            self._wake_w = None

    def _wake_locked(self) -> None:
        """Make the dispatcher's wait return (call with the lock held)."""
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"!")
            except BlockingIOError:
                pass  # the pipe is full of wake-ups already

    # -- the dispatcher thread -----------------------------------------------------------------
    def _dispatch(self) -> None:
        """Hand out work and relay replies until shutdown; then stop every worker."""
        error = None
        try:
            while self._step():
                pass
        except BaseException as exc:  # a bug here must not leave futures waiting forever
            error = f"the local executor's dispatcher failed: {type(exc).__name__}: {exc}"
            with self._lock:
                self._broken, self._closing = error, "cancel"
            raise
        finally:
            self._close(error)

    def _step(self) -> bool:
        """One round: apply cancels, hand out work, wait for a reply, a death or a wake-up,
        handle it. False once shutdown asks to stop and (for a waiting shutdown) all is done."""
        with self._lock:
            closing, cancels = self._closing, self._cancels
            self._cancels = set()
        if closing == "cancel":
            return False
        self._stop_cancelled(cancels)
        self._assign()
        live = [slot for slot in self._slots if slot is not None]
        if closing == "wait" and not self._queue and all(s.future is None for s in live):
            return False
        waitables = [self._wake_r] + [s.conn for s in live] + [s.process.sentinel for s in live]
        ready = set(wait(waitables))
        if self._wake_r in ready:
            self._drain_wake()
        for slot in live:
            if slot.conn in ready:
                self._receive(slot)
            elif slot.process.sentinel in ready:
                self._lost(slot)
        return True

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _next_request(self) -> tuple[Future, TrialRequest] | None:
        """The oldest queued request whose future was not cancelled, now marked running."""
        with self._lock:
            while self._queue:
                future, request = self._queue.popleft()
                if future.set_running_or_notify_cancel():
                    return future, request
        return None

    def _assign(self) -> None:
        """Send each idle worker (set up or still starting) the next queued request; never one
        being stopped for a cancel."""
        for slot in self._slots:
            if slot is None or slot.future is not None or slot.cancelled:
                continue
            item = self._next_request()
            if item is None:
                return
            future, request = item
            try:
                slot.conn.send(request)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker just died: its death fails the trial with WorkerLost
            except Exception as exc:  # the request does not pickle; the worker got nothing
                future.set_exception(TrialFailed(
                    f"the trial request could not be sent to a worker: {type(exc).__name__}: "
                    f"{exc}", traceback.format_exc()))
                continue
            slot.future = future

    def _receive(self, slot: _Slot) -> None:
        """Read one reply of `slot`'s worker: it is set up, or its trial's outcome."""
        try:
            kind, payload = slot.conn.recv()
        except (EOFError, OSError):
            self._lost(slot)
            return
        except Exception as exc:  # read whole, but does not unpickle in the driver
            kind, payload = "error", TrialFailed(
                f"the trial's result could not be read in the driver: {type(exc).__name__}: "
                f"{exc}", traceback.format_exc())
        if kind == "ready":
            slot.ready = True
            self._start_failures = 0
            return
        future, slot.future = slot.future, None
        if future is None or future.done():
            return  # cancelled meanwhile
        if kind == "ok":
            future.set_result(payload)
        else:
            future.set_exception(payload)

    def _stop_cancelled(self, cancels: set[Future]) -> None:
        """Terminate the workers running cancelled trials; their deaths resolve the futures."""
        for slot in self._slots:
            if slot is not None and slot.future is not None and slot.future in cancels:
                slot.cancelled = True
                slot.process.terminate()

    def _lost(self, slot: _Slot) -> None:
        """`slot`'s process died: fail its trial, then replace it (unless the pool is being
        cancelled or is broken; a waiting shutdown still needs workers for queued trials)."""
        slot.process.join(timeout=5)
        if slot.process.exitcode is None:  # closed its pipe but lingers: finish it
            slot.process.kill()
            slot.process.join()
        slot.conn.close()
        how = _how_it_died(slot.process)
        if slot.future is not None and not slot.future.done():
            slot.future.set_exception(WorkerLost(
                f"the trial was cancelled by the driver (worker pid {slot.process.pid} stopped)"
                if slot.cancelled else
                f"the worker process died during the trial (pid {slot.process.pid}, {how}): "
                "killed, out of memory, or a crash in native code"))
        if not slot.ready:
            self._started_badly(how)
        with self._lock:
            stop = self._closing == "cancel" or self._broken is not None
        self._slots[slot.index] = None if stop else self._spawn(slot.index)

    def _started_badly(self, how: str) -> None:
        """A worker died before it was set up; after a few in a row the pool is broken."""
        self._start_failures += 1
        if self._start_failures < _START_FAILURES:
            return
        message = (f"{self._start_failures} worker processes in a row died while starting "
                   f"(the last: {how}); see their error output above")
        with self._lock:
            self._broken = message
            queued = list(self._queue)
            self._queue.clear()
        for future, _ in queued:
            if future.set_running_or_notify_cancel():
                future.set_exception(WorkerLost(message))

    def _close(self, error: str | None) -> None:
        """Shutdown's end, on the dispatcher thread: drop queued trials, stop every worker
        (terminating those still running a trial), reap them, close the pipes."""
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        for future, _ in queued:
            if error is None:
                future.cancel()
            elif future.set_running_or_notify_cancel():
                future.set_exception(WorkerLost(error))
        live = [slot for slot in self._slots if slot is not None]
        for slot in live:
            self._stop(slot)
        for slot in live:
            self._reap(slot, error)
        self._slots = [None] * self.workers
        with self._lock:
            self._close_wake_locked()

    @staticmethod
    def _stop(slot: _Slot) -> None:
        """Ask an idle worker to exit; terminate one that runs a trial."""
        if slot.future is not None:
            slot.process.terminate()
            return
        try:
            slot.conn.send(None)
        except OSError:
            pass  # already gone

    @staticmethod
    def _reap(slot: _Slot, error: str | None) -> None:
        slot.process.join(timeout=10)
        if slot.process.exitcode is None:
            slot.process.kill()
            slot.process.join()
        slot.conn.close()
        if slot.future is not None and not slot.future.done():
            slot.future.set_exception(WorkerLost(
                error or "cancelled: the executor was shut down while the trial ran "
                f"(worker pid {slot.process.pid} terminated)"))
