"""`RayExecutor`: trials as Ray tasks on a cluster.

It implements `nas.orchestrator.executor_base.Executor`, as `LocalExecutor` does: a future
raises `TrialFailed` when the trial raised, `WorkerLost` (with Ray's reason) when the process
or node running it died. Ray never retries a trial by itself (`max_retries=0`): retries
are the driver's decision. Each trial asks the cluster for `num_cpus_per_trial` CPUs and
`num_gpus_per_trial` GPUs; torch in the trial uses that many threads, and a trial given a GPU
trains on it. Workers return plain data and never touch the database, and import user code (a
python task, a mixer by import path) only when the request carries `allow_code`, as local
workers do.

Connecting: `address` is what `ray.init` takes — "auto", "127.0.0.1:6379", "ray://HOST:10001".
Only `address=None` or "local" starts a Ray instance (in-process, for convenience). An existing
connection in this process is reused and left open at shutdown. A HOST:PORT where nothing accepts
a connection within CONNECT_TIMEOUT is refused at once (ray.init would retry it for minutes).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import ray
import ray.exceptions as rex

from nas.errors import NasError
from nas.evaluate.trial import TrialRequest, TrialResult
from nas.orchestrator.executor_base import TrialFailed, WorkerLost, WorkerOutput, worker_failure

TASK_NAME = "nas-trial"
CONNECT_TIMEOUT = 15.0  # seconds to wait for the cluster's port to accept a connection
# Errors meaning the process (or node) running the trial is gone, not that the trial failed.
_LOST = (rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError,
         rex.ObjectLostError, rex.OutOfMemoryError, rex.TaskCancelledError)


def run_on_node(request: TrialRequest,
                runner: Callable[[TrialRequest], TrialResult] | None = None) -> WorkerOutput:
    """The Ray task body: run one trial (with `runner`, default `run_trial`), turning its
    exception into a picklable TrialFailed."""
    from nas.evaluate.trial import run_trial

    start = time.perf_counter()
    try:
        result = (runner or run_trial)(request)
    except Exception as exc:
        raise worker_failure(exc) from None
    node = ray.util.get_node_ip_address()
    return WorkerOutput(result, f"ray {node} pid {os.getpid()}", time.perf_counter() - start)


def devices_held(num_gpus_per_trial: float) -> float:
    """What a trial's wall time is multiplied by when it is charged (README: device-hours are
    wall time x the devices it held): its GPUs, or one device for a CPU-only trial."""
    return num_gpus_per_trial if num_gpus_per_trial > 0 else 1.0


class RayExecutor:
    """Trials as Ray tasks; `workers` of them in flight at once (the driver fills that many).

    `workers` defaults to what the cluster holds when connecting: its CPUs (or GPUs, when
    trials take GPUs) divided by the per-trial share. `runtime_env` is passed to `ray.init`
    (e.g. ``{"py_modules": [...]}`` to ship this checkout of nas to nodes that lack it).
    `runner`, a picklable callable TrialRequest -> TrialResult, is what a task calls instead of
    `run_trial` (e.g. a no-op trial to measure the executor's own overhead).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus_per_trial: float = 1,
                 num_gpus_per_trial: float = 0, workers: int | None = None,
                 runtime_env: dict[str, Any] | None = None,
                 runner: Callable[[TrialRequest], TrialResult] | None = None) -> None:
        if num_cpus_per_trial <= 0 or num_gpus_per_trial < 0:
            raise NasError("ray: need num_cpus_per_trial > 0 and num_gpus_per_trial >= 0, got "
                           f"{num_cpus_per_trial} and {num_gpus_per_trial}")
        self.address = address
        self.num_cpus = num_cpus_per_trial
        self.num_gpus = num_gpus_per_trial
        self.devices_per_trial = devices_held(num_gpus_per_trial)
        self.threads = max(1, int(num_cpus_per_trial))
        self.runner = runner
        self._owns_connection = connect(address, runtime_env)
        self.workers = workers or self._capacity()
        self._remote = ray.remote(run_on_node).options(
            name=TASK_NAME, num_cpus=num_cpus_per_trial, num_gpus=num_gpus_per_trial,
            max_retries=0, retry_exceptions=False)
        self._refs: dict[Future, ray.ObjectRef] = {}

    def _capacity(self) -> int:
        """Concurrent trials the cluster fits now; NasError when no node fits even one."""
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        fits = [n for n in nodes if n.get("CPU", 0) >= self.num_cpus
                and n.get("GPU", 0) >= self.num_gpus]
        if not fits:
            have = ", ".join(f"{n.get('CPU', 0):g} CPU/{n.get('GPU', 0):g} GPU" for n in nodes)
            raise NasError(
                f"ray: no node of the cluster at {self.address or 'local'} has "
                f"{self.num_cpus:g} CPU and {self.num_gpus:g} GPU for one trial (nodes: "
                f"{have or 'none'}); lower --num-cpus-per-trial / --num-gpus-per-trial")
        key, share = ("GPU", self.num_gpus) if self.num_gpus else ("CPU", self.num_cpus)
        return max(1, int(sum(n.get(key, 0) // share for n in fits)))

    def submit(self, request: TrialRequest) -> Future:
        """Start `request` on the cluster; the future resolves to a WorkerOutput."""
        request = replace(request, num_threads=self.threads,
                          device="cuda" if self.num_gpus else request.device)
        ref = self._remote.remote(request, self.runner)
        outer: Future = Future()
        self._refs[outer] = ref
        ref.future().add_done_callback(lambda done: self._relay(done, outer))
        return outer

    def _relay(self, done: Future, outer: Future) -> None:
        self._refs.pop(outer, None)
        if outer.done():  # cancelled meanwhile
            return
        exc = done.exception()
        if exc is None:  # charged wall time x devices held (a CPU-only trial: one device)
            output = done.result()
            outer.set_result(replace(output, seconds=output.seconds * self.devices_per_trial))
        else:
            outer.set_exception(translate(exc))

    def cancel(self, future: Future) -> bool:
        """Stop the trial behind `future` (its worker is killed); False if it already ended."""
        ref = self._refs.pop(future, None)
        if ref is None:
            return False
        ray.cancel(ref, force=True)
        future.set_exception(WorkerLost("the trial was cancelled by the driver"))
        return True

    def heal(self) -> None:
        """A no-op: Ray replaces dead worker processes itself."""

    def shutdown(self, cancel: bool = False) -> None:
        """cancel=False waits for running trials; cancel=True kills them (their futures raise
        WorkerLost). Disconnects from Ray only if this executor made the connection."""
        if cancel:
            for future in list(self._refs):
                self.cancel(future)
        else:
            for future in list(self._refs):
                try:
                    future.exception()
                except Exception:  # cancelled; nothing to wait for
                    pass
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()


def connect(address: str | None, runtime_env: dict[str, Any] | None = None) -> bool:
    """Join the cluster at `address` (None/"local": start one in this process). True if this
    call made the connection, False if the process was already connected."""
    if ray.is_initialized():
        return False
    local = address in (None, "", "local")
    if not local:
        probe(address)
    try:
        ray.init(address=None if local else address, runtime_env=runtime_env,
                 include_dashboard=False if local else None, log_to_driver=True,
                 logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise NasError(f"ray: cannot connect to the cluster at {address!r}: {exc}; start one "
                       "with `ray start --head` or check the address (auto, HOST:6379, "
                       "ray://HOST:10001)") from None
    return True


def probe(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast when nothing accepts connections at `address`: ray.init would retry for many
    minutes."""
    reason = unreachable(address, timeout)
    if reason:
        raise NasError(f"cannot reach a Ray cluster at {address} ({reason}); start one with "
                       "`ray start --head` or check the address (auto, HOST:6379, "
                       "ray://HOST:10001)")


def unreachable(address: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why nothing accepts a TCP connection at HOST:PORT (or ray://HOST:PORT) within `timeout`
    seconds; None when something does, or for addresses Ray resolves itself ("auto")."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        return "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
    return None


def translate(exc: BaseException) -> BaseException:
    """Ray's error for a trial as the executor contract's: TrialFailed or WorkerLost."""
    if isinstance(exc, rex.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, TrialFailed):
            return cause
        if isinstance(cause, BaseException):  # raised before run_trial: e.g. nas not importable
            return TrialFailed(_hint(f"{type(cause).__name__}: {cause}"), str(exc))
        return TrialFailed(_hint(str(exc).strip().splitlines()[-1]), str(exc))
    if isinstance(exc, _LOST):
        return WorkerLost(f"the Ray worker running the trial was lost: {type(exc).__name__}: "
                          f"{_first_lines(str(exc))}")
    if isinstance(exc, rex.RayError):
        return TrialFailed(_hint(f"{type(exc).__name__}: {_first_lines(str(exc))}"), str(exc))
    return exc


def _hint(message: str) -> str:
    if "No module named 'nas" in message:
        message += ("; nas is not installed on that node: install it there, or ship it with "
                    "runtime_env={'py_modules': [<path to the nas package>]}")
    return message


def _first_lines(text: str, lines: int = 3) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[:lines])
