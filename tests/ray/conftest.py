"""The `ray` tests' cluster: one real Ray cluster on 127.0.0.1 for the session (free ports,
its own temp dir and auth token), torn down in a finaliser even when tests fail. Every test
module here that uses it is marked `ray` (run: pytest -m ray); test_cli_errors.py needs none."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

TOKEN = uuid.uuid4().hex  # this session's cluster token; never written to ~/.ray
# Ray reads these when it is imported (the auth mode is cached then): set them first.
CLIENT_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
              "RAY_AUTH_TOKEN": TOKEN, "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(CLIENT_ENV)

try:  # without ray[default] (the default install), the tests here are not collected
    import ray  # noqa: F401
    psutil = importlib.import_module("psutil")  # after ray, which puts its own on sys.path
except ImportError:
    collect_ignore_glob = ["test_*.py"]

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCluster:
    def __init__(self, num_cpus: int = 2) -> None:
        self.num_cpus = num_cpus
        self.port, self.dashboard_port = free_port(), free_port()
        self.token = TOKEN
        self.temp_dir = tempfile.mkdtemp(prefix="nasray", dir="/tmp")  # short: socket paths
        self.process: subprocess.Popen | None = None
        self.log = Path(self.temp_dir) / "ray-start.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus what a client of this cluster needs."""
        # as from an activated venv: `python` on the cluster is this one (jobs run `python`)
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, **CLIENT_ENV, "PATH": path}

    def start(self, timeout: float = 90) -> LocalCluster:
        ports = {"--port": self.port, "--dashboard-port": self.dashboard_port}
        for flag in ("--ray-client-server-port", "--node-manager-port", "--object-manager-port",
                     "--metrics-export-port", "--dashboard-agent-listen-port",
                     "--dashboard-agent-grpc-port", "--runtime-env-agent-port"):
            ports[flag] = free_port()
        command = [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                   "--dashboard-host=127.0.0.1", f"--num-cpus={self.num_cpus}", "--num-gpus=0",
                   "--disable-usage-stats", f"--temp-dir={self.temp_dir}",
                   "--object-store-memory=200000000",
                   *(f"{flag}={port}" for flag, port in ports.items())]
        self.process = subprocess.Popen(command, env=self.env, stdout=self.log.open("w"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (self._gcs_up() and self._jobs_up()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"the test Ray cluster did not start:\n{log}")
            time.sleep(0.5)
        return self

    def _gcs_up(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def _jobs_up(self) -> bool:
        request = urllib.request.Request(f"{self.dashboard}/api/version",
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM the cluster's process group and descendants, SIGKILL what is left."""
        if self.process is None:
            return
        try:
            tree = [psutil.Process(self.process.pid)]
            tree += tree[0].children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _, alive = psutil.wait_procs(tree, timeout=6)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        self.process.wait(timeout=5)
        self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster():
    cluster = LocalCluster(num_cpus=2)
    try:
        yield cluster.start()
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()


@pytest.fixture(scope="session")
def ray_connected(ray_cluster):
    """This test process connected to the cluster (as a search driver would be)."""
    import ray

    ray.init(address=ray_cluster.address, logging_level="WARNING")
    yield ray_cluster
    ray.shutdown()
