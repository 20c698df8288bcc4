"""RayExecutor against a real local cluster: the executor contract LocalExecutor passes."""

from __future__ import annotations

import os
import signal
import time

import pytest

from nas.evaluate.trial import TrialRequest
from nas.orchestrator.executor import LocalExecutor
from nas.orchestrator.executor_base import Executor, TrialFailed, WorkerLost
from nas.orchestrator.ray_executor import TASK_NAME, RayExecutor, devices_held, probe
from nas.searchspace import loads

pytestmark = pytest.mark.ray

VALUES = {
    "model.d_model": 32, "model.n_layers": 2, "model.norm": "rmsnorm",
    "model.hybrid.full_attention_ratio": 0.5, "model.hybrid.placement": "last",
    "model.hybrid.other": "short_conv", "model.channel_mixer.kind": "mlp",
    "training.steps": 20, "training.batch_size": 8, "training.lr": 3e-3,
}


def request_for(tiny_space_text, **training) -> TrialRequest:
    space = loads(tiny_space_text)
    spec = space.assemble({**VALUES, **{f"training.{k}": v for k, v in training.items()}})
    return TrialRequest(spec_json=spec.to_json(), task=space.task,
                        latency=space.latency_requests(), seed=3, num_threads=1,
                        eval_examples=128)


@pytest.fixture
def executor(ray_connected):
    executor = RayExecutor(ray_connected.address, num_cpus_per_trial=1)
    yield executor
    executor.shutdown(cancel=True)


def test_a_trial_matches_the_local_executor(executor, tiny_space_text):
    request = request_for(tiny_space_text)
    remote = executor.submit(request).result(timeout=180)
    local_executor = LocalExecutor(workers=1, threads=1)
    try:
        local = local_executor.submit(request).result(timeout=180)
    finally:
        local_executor.shutdown()
    assert remote.worker.startswith("ray 127.0.0.1 pid ")
    assert remote.seconds > 0
    for name in ("accuracy", "loss", "params"):  # training is deterministic per seed
        assert remote.result.metrics[name] == local.result.metrics[name]
    assert remote.result.metrics["latency_ms"] > 0
    assert remote.result.curve == local.result.curve


def test_a_live_cluster_passes_the_connect_probe(ray_cluster):
    probe(ray_cluster.address)  # its GCS port accepts connections: no error


def test_the_cluster_sets_how_many_trials_run_at_once(executor):
    assert executor.workers == 2  # 2 CPUs, 1 per trial
    assert executor.threads == 1
    assert isinstance(executor, Executor)  # the contract the search loop is typed against


def test_a_failing_trial_raises_trial_failed(executor, tiny_space_text):
    future = executor.submit(request_for(tiny_space_text, lr=1e6))
    with pytest.raises(TrialFailed) as caught:
        future.result(timeout=180)
    assert caught.value.message.startswith("TrialDiverged")
    assert "Traceback" in caught.value.worker_traceback


def test_a_trial_that_does_not_fit_the_cluster_is_refused(ray_connected):
    from nas.errors import NasError

    with pytest.raises(NasError, match="no node of the cluster"):
        RayExecutor(ray_connected.address, num_cpus_per_trial=1, num_gpus_per_trial=1)


def running_trial_pid(timeout: float = 90) -> int:
    from ray.util.state import list_tasks

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = list_tasks(filters=[("name", "=", TASK_NAME), ("state", "=", "RUNNING")],
                           detail=True, raise_on_missing_output=False)
        pids = [t.worker_pid for t in tasks if t.worker_pid]
        if pids:
            return pids[0]
        time.sleep(0.5)
    raise AssertionError("no nas trial started on the cluster")


def test_a_killed_worker_raises_worker_lost_and_the_next_trial_runs(executor, tiny_space_text):
    future = executor.submit(request_for(tiny_space_text, steps=5000))
    pid = running_trial_pid()
    time.sleep(2)  # into training
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerLost, match="lost"):
        future.result(timeout=120)
    executor.heal()
    output = executor.submit(request_for(tiny_space_text, steps=5)).result(timeout=180)
    assert output.result.metrics["params"] > 0


def test_cancel_kills_the_trial(executor, tiny_space_text):
    future = executor.submit(request_for(tiny_space_text, steps=5000))
    running_trial_pid()
    assert executor.cancel(future)
    with pytest.raises(WorkerLost, match="cancelled"):
        future.result(timeout=5)
    assert not executor.cancel(future)


def test_a_search_on_the_cluster_matches_a_local_one(ray_connected, tiny_space_text, tmp_path):
    """The driver loop with RayExecutor: same candidates and accuracies as with local workers,
    every trial recorded by the driver with a ray worker."""
    from nas.budget import parse_budget
    from nas.orchestrator.progress import NullReporter
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.store import Store

    runs = {}
    for where, address in (("local", None), ("ray", ray_connected.address)):
        url = f"sqlite:///{tmp_path / where}.db"
        options = SearchOptions(budget=parse_budget("2trials"), storage=url, threads=1,
                                seed=5, ray_address=address)
        outcome = run_search(loads(tiny_space_text, "space.yaml"), options, NullReporter())
        runs[where] = Store(url).trials(outcome.run_name)
    assert [t.config_hash for t in runs["ray"]] == [t.config_hash for t in runs["local"]]
    assert [t.values["accuracy"] for t in runs["ray"]] == \
        [t.values["accuracy"] for t in runs["local"]]


def test_a_ray_worker_imports_user_code_only_when_the_request_allows_it(executor,
                                                                        tiny_space_text,
                                                                        tmp_path):
    """The driver's --allow-code travels in the request: a Ray worker refuses a python task
    without it (nothing imported, whatever its environment says) and trains it with it."""
    from dataclasses import replace

    (tmp_path / "usertask_ray.py").write_text(
        "open(__file__.replace('usertask_ray.py', 'IMPORTED'), 'w').close()\n"
        "from nas.tasks import MQARTask\n"
        "def make():\n    return MQARTask(vocab_size=16, seq_len=24, num_kv_pairs=3)\n")
    task = {"kind": "python", "entrypoint": "usertask_ray:make", "path": str(tmp_path)}
    request = replace(request_for(tiny_space_text), task=task, latency=())
    with pytest.raises(TrialFailed, match="usertask_ray.py needs your permission"):
        executor.submit(request).result(timeout=180)
    assert not (tmp_path / "IMPORTED").exists()
    done = executor.submit(replace(request, allow_code=True)).result(timeout=180)
    assert done.result.metrics["accuracy"] >= 0 and (tmp_path / "IMPORTED").exists()


@pytest.mark.parametrize("gpus, charged", [(0, 3.0), (0.5, 1.5), (2, 6.0)])
def test_a_trial_is_charged_its_wall_time_times_the_devices_it_held(gpus, charged):
    """README: device-hours are each trial's wall time x the devices it held (a CPU-only
    trial holds one). Checked on the executor's relay, without a cluster."""
    from concurrent.futures import Future

    from nas.evaluate.trial import TrialResult
    from nas.orchestrator.executor_base import WorkerOutput

    executor = object.__new__(RayExecutor)  # no connection: only the relay is exercised
    executor._refs = {}
    executor.devices_per_trial = devices_held(gpus)
    done, outer = Future(), Future()
    done.set_result(WorkerOutput(TrialResult({}), "ray 10.0.0.1 pid 7", 3.0))
    executor._relay(done, outer)
    assert outer.result().seconds == charged
