"""LocalExecutor's own worker pool, with real spawned processes: a killed worker fails only its
own trial and is replaced, each worker keeps its device, failures and out-of-memory errors come
back typed, Ctrl-C does not reach trials, and shutdown leaves no process behind.

The runners are top-level functions, so they pickle into the workers. A request's `task` dict
carries what a runner needs (how long to sleep, where to write its pid)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from nas.evaluate.trial import TrialRequest, TrialResult
from nas.orchestrator.executor import LocalExecutor
from nas.orchestrator.executor_base import TrialFailed, TrialOutOfMemory, WorkerLost, WorkerOutput


def sleepy(request: TrialRequest) -> TrialResult:
    """Write this worker's pid to task["dir"]/task["name"], sleep task["seconds"], report."""
    task = request.task
    if "dir" in task:
        (Path(task["dir"]) / task["name"]).write_text(str(os.getpid()))
    time.sleep(task.get("seconds", 0))
    return TrialResult(metrics={"pid": float(os.getpid())}, device=request.device)


def failing(request: TrialRequest) -> TrialResult:
    if request.task["error"] == "oom":
        import torch

        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")
    if request.task["error"] == "unpicklable":
        return TrialResult(metrics={"pid": float(os.getpid())}, fingerprint={"f": lambda: 0})
    raise ValueError("no good")


def req(**task) -> TrialRequest:
    return TrialRequest(spec_json="{}", task=task)


def wait_for(path: Path, timeout: float = 60) -> int:
    """The pid a runner wrote to `path`, once it is there."""
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path.name} never started"
        time.sleep(0.02)
    return int(path.read_text())


def assert_no_children(pids: list[int]) -> None:
    alive = {p.pid for p in multiprocessing.active_children()}
    assert not alive & set(pids)
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # reaped, not a zombie
            os.kill(pid, 0)


@pytest.fixture
def pool():
    """Two workers on fake devices, shut down (and checked gone) after the test."""
    executor = LocalExecutor(workers=2, threads=1, devices=["cpu", "meta"], runner=sleepy)
    executor.start()
    started = executor.pids()
    yield executor
    executor.shutdown(cancel=True)
    assert_no_children(started + executor.pids())


def test_a_killed_worker_fails_only_its_own_trial(pool, tmp_path):
    doomed = pool.submit(req(dir=str(tmp_path), name="doomed", seconds=60))
    spared = pool.submit(req(dir=str(tmp_path), name="spared", seconds=3))
    victim = wait_for(tmp_path / "doomed")
    survivor = wait_for(tmp_path / "spared")
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerLost, match=f"pid {victim}, killed by SIGKILL") as lost:
        doomed.result(timeout=30)
    assert str(lost.value).startswith("the worker process died during the trial")
    output = spared.result(timeout=30)  # the other worker's trial carried on
    assert isinstance(output, WorkerOutput) and output.result.metrics["pid"] == survivor
    assert output.worker.startswith(f"pid {survivor} ")
    # a fresh process took the dead one's place; both serve the next trials
    pids = pool.pids()
    assert len(pids) == 2 and victim not in pids and survivor in pids
    outputs = [pool.submit(req(seconds=0.5)) for _ in range(2)]
    assert {f.result(timeout=60).result.metrics["pid"] for f in outputs} == set(pids)


def test_each_worker_keeps_its_device(tmp_path):
    executor = LocalExecutor(workers=3, threads=1, devices=["cpu", "meta"], runner=sleepy)
    try:
        rounds = [[executor.submit(req(dir=str(tmp_path), name=f"{r}-{i}", seconds=0.3))
                   for i in range(3)] for r in range(2)]
        outputs = [f.result(timeout=60) for futures in rounds for f in futures]
    finally:
        executor.shutdown()
    devices = {}
    for output in outputs:  # every trial ran on the device of the worker that ran it
        devices.setdefault(output.result.metrics["pid"], set()).add(output.result.device)
        assert output.worker.endswith(" " + output.result.device)
    assert all(len(seen) == 1 for seen in devices.values())
    assert sorted(d for seen in devices.values() for d in seen) == ["cpu", "cpu", "meta"]


def test_shutdown_with_cancel_stops_running_trials_at_once(tmp_path):
    executor = LocalExecutor(workers=2, threads=1, runner=sleepy)
    executor.start()
    pids = executor.pids()
    running = executor.submit(req(dir=str(tmp_path), name="long", seconds=60))
    queued = [executor.submit(req(seconds=60)) for _ in range(2)]
    wait_for(tmp_path / "long")
    start = time.monotonic()
    executor.shutdown(cancel=True)
    assert time.monotonic() - start < 15
    with pytest.raises(WorkerLost, match="cancelled"):
        running.result(timeout=0)
    assert all(f.done() for f in queued)  # one ran on the second worker, one was dropped
    assert any(f.cancelled() for f in queued)
    assert_no_children(pids)
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(req())


def test_shutdown_without_cancel_lets_trials_finish(tmp_path):
    executor = LocalExecutor(workers=1, threads=1, runner=sleepy)
    assert executor.pids() == []  # workers start with the first trial
    executor.start()
    pids = executor.pids()
    first = executor.submit(req(dir=str(tmp_path), name="first", seconds=1))
    second = executor.submit(req(seconds=0.2))  # queued behind it: runs too
    wait_for(tmp_path / "first")
    executor.shutdown()
    assert first.result(timeout=0).result.metrics["pid"] == pids[0]
    assert second.result(timeout=0).result.metrics["pid"] == pids[0]
    assert_no_children(pids)


def test_failures_come_back_typed_and_the_worker_stays(tmp_path):
    executor = LocalExecutor(workers=1, threads=1, runner=failing)
    try:
        executor.start()
        pid = executor.pids()[0]
        with pytest.raises(TrialFailed) as failed:
            executor.submit(req(error="value")).result(timeout=60)
        assert type(failed.value) is TrialFailed and failed.value.message == "ValueError: no good"
        assert "Traceback" in failed.value.worker_traceback
        with pytest.raises(TrialOutOfMemory, match="OutOfMemoryError: CUDA out of memory"):
            executor.submit(req(error="oom")).result(timeout=60)
        with pytest.raises(TrialFailed, match="could not be sent back"):
            executor.submit(req(error="unpicklable")).result(timeout=60)
        assert executor.pids() == [pid]  # none of that cost the worker
    finally:
        executor.shutdown()


def test_cancel_stops_one_trial_and_its_worker_is_replaced(pool, tmp_path):
    running = pool.submit(req(dir=str(tmp_path), name="cancelled", seconds=60))
    victim = wait_for(tmp_path / "cancelled")
    assert pool.cancel(running)
    with pytest.raises(WorkerLost, match="cancelled"):
        running.result(timeout=30)
    assert not pool.cancel(running)
    output = pool.submit(req(seconds=0)).result(timeout=60)
    assert output.result.metrics["pid"] != victim


def test_ctrl_c_does_not_reach_a_running_trial(pool, tmp_path):
    future = pool.submit(req(dir=str(tmp_path), name="interrupted", seconds=1))
    os.kill(wait_for(tmp_path / "interrupted"), signal.SIGINT)
    assert future.result(timeout=30).result.metrics["pid"] > 0


def test_a_runner_that_does_not_pickle_is_refused_at_once():
    with pytest.raises(Exception, match="pickle|local object"):
        LocalExecutor(workers=2, threads=1, runner=lambda request: None)


def test_an_executor_never_used_starts_nothing():
    before = {p.pid for p in multiprocessing.active_children()}
    executor = LocalExecutor(workers=2, threads=1, runner=sleepy)
    executor.shutdown()
    assert {p.pid for p in multiprocessing.active_children()} == before
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(req())


def test_workers_that_cannot_start_break_the_pool_with_a_clear_error():
    """No such GPU: each worker dies setting itself up; after three in a row, trials fail at
    once with WorkerLost saying so (instead of the pool respawning forever)."""
    executor = LocalExecutor(workers=1, threads=1, devices=["cuda:99"], runner=sleepy)
    try:
        with pytest.raises(WorkerLost, match="exit code 1"):
            executor.submit(req()).result(timeout=60)  # handed to the first, which died
        deadline = time.monotonic() + 60
        while not executor.submit(req()).done():  # queued until the pool gives up
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with pytest.raises(WorkerLost, match="3 worker processes in a row died while starting"):
            executor.submit(req()).result(timeout=0)
        assert executor.pids() == []
    finally:
        executor.shutdown(cancel=True)
