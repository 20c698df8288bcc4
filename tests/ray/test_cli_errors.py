"""Ray errors a user can cause, as one line and exit status 2, without a cluster: an unknown job
on a job server (a stand-in answering as Ray's does), an address nobody listens on, a budget or
space that would fail the job, a Ray address with no cluster behind it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import ray
from typer.testing import CliRunner

from nas.cli import app
from nas.cli import submit as submit_module
from nas.cli.submit import IMPORT_CHECK
from nas.errors import NasError
from nas.orchestrator import ray_executor
from tests.conftest import python_task_space

JOB = "raysubmit_nosuch"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JobServer(BaseHTTPRequestHandler):
    """Ray's job server for a cluster with no jobs: its version, else 404 as Ray words it."""

    requests: list[str] = []

    def _answer(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        if self.path == "/api/version":
            body, code = json.dumps({"version": "0", "ray_version": ray.__version__,
                                     "ray_commit": "", "session_name": "s"}), 200
        else:
            job = self.path.removeprefix("/api/jobs/").split("/")[0]
            body, code = f"Job {job} does not exist", 404
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def job_server():
    JobServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), JobServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def nas(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("verb", [["--status"], ["--stop"], ["--logs"], ["--follow", "--logs"]])
def test_an_unknown_job_is_one_line_and_exit_2(job_server, verb):
    result = nas("submit", *verb, JOB, "--address", job_server)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: no job {JOB} at {job_server}\n"
    assert result.stdout == ""


@pytest.mark.parametrize("scheme", ["http://", ""])  # "": a GCS address, Ray asks it for the URL
def test_a_job_server_nobody_listens_on_is_one_line_and_exit_2(scheme):
    address = f"{scheme}127.0.0.1:{free_port()}"
    start = time.monotonic()
    result = nas("submit", "--status", JOB, "--address", address)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cannot reach the Ray job server at {address}")
    assert len(result.stderr.splitlines()) == 1
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("problem, budget, expected", [
    ("budget", "2parsecs", "cannot read budget '2parsecs'"),
    ("space", "1trials", "model.d_model"),
])
def test_a_job_that_would_fail_is_refused_before_submitting(job_server, tiny_space_file,
                                                            problem, budget, expected):
    if problem == "space":
        text = tiny_space_file.read_text()
        tiny_space_file.write_text(text.replace("{choice: [16, 32]}", "{choice: []}"))
    result = nas("submit", str(tiny_space_file), "--address", job_server, "--budget", budget,
                 "--storage", f"sqlite:///{tiny_space_file.parent / 'x.db'}")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert JobServer.requests == []  # nothing uploaded, nothing submitted


def test_a_space_that_runs_code_is_not_submitted_without_allow_code(job_server, tiny_space_file,
                                                                    monkeypatch):
    monkeypatch.delenv("NAS_ALLOW_CODE", raising=False)
    python_task_space(tiny_space_file, "usertask_submit")
    space = tiny_space_file
    result = nas("submit", str(space), "--address", job_server, "--budget", "1trials",
                 "--storage", f"sqlite:///{space.parent / 'x.db'}")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "task.entrypoint" in result.stderr and "usertask_submit.py" in result.stderr
    assert "rerun with --allow-code" in result.stderr
    assert JobServer.requests == []  # nothing uploaded, nothing submitted
    assert not (space.parent / "IMPORTED").exists()


def test_allow_code_is_passed_on_to_the_jobs_search(tiny_space_file, monkeypatch):
    """With --allow-code the job's `nas search` gets --allow-code (and nothing else grants it:
    no variable is set in the job's environment); the module is read here, not imported."""
    monkeypatch.delenv("NAS_ALLOW_CODE", raising=False)
    submitted = []

    class Client:
        def submit_job(self, **job):
            submitted.append(job)
            return "raysubmit_1"

        def get_address(self):
            return "http://head:8265"

    monkeypatch.setattr(submit_module, "job_client", lambda address: Client())
    url = f"sqlite:///{tiny_space_file.parent / 'x.db'}"
    plain = nas("submit", str(tiny_space_file), "--address", "http://head:8265", "--budget",
                "1trials", "--storage", url)
    assert plain.exit_code == 0, plain.output
    python_task_space(tiny_space_file, "usertask_submit")
    space = tiny_space_file
    allowed = nas("submit", str(space), "--address", "http://head:8265", "--budget", "1trials",
                  "--storage", url, "--allow-code")
    assert allowed.exit_code == 0, allowed.output
    without, with_code = (job["entrypoint"].removeprefix(f"{IMPORT_CHECK}; ") for job in submitted)
    assert without.split() == ["python", "-m", "nas", "search", "tiny.yaml", "--budget",
                               "1trials", "--storage", url]
    assert with_code.split() == [*without.split(), "--allow-code"]
    assert all("NAS_ALLOW_CODE" not in job["runtime_env"]["env_vars"] for job in submitted)
    assert not (space.parent / "IMPORTED").exists()


def test_search_with_no_cluster_at_the_ray_address_fails_fast(tiny_space_file, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "nas", "search", str(tiny_space_file), "--budget", "1trials",
         "--ray-address", address, "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: cannot reach a Ray cluster at {address} (")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - start < 30


def test_a_ray_address_that_does_not_answer_times_out(monkeypatch):
    def silent(address, timeout):
        assert address == ("head.example", 6379) and timeout == ray_executor.CONNECT_TIMEOUT
        raise TimeoutError("timed out")

    monkeypatch.setattr(ray_executor.socket, "create_connection", silent)
    with pytest.raises(NasError, match=r"cannot reach a Ray cluster at ray://head.example:6379 "
                       r"\(timed out\)"):
        ray_executor.probe("ray://head.example:6379")
    ray_executor.probe("auto")  # left to Ray


def test_the_job_says_when_the_head_nodes_python_lacks_nas(tmp_path):
    """A cluster started outside nas's environment: the job's `python` cannot import nas."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named typer' >&2\nexit 1\n")
    fake.chmod(0o755)
    entry = f"{IMPORT_CHECK}; echo searching"
    lacking = subprocess.run(["sh", "-c", entry], capture_output=True, text=True, timeout=30,
                             env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert lacking.returncode == 1 and lacking.stdout == ""
    assert f"the head node's python ({fake}) cannot import nas: start the Ray cluster" \
        in lacking.stderr
    ready = subprocess.run(["sh", "-c", entry], capture_output=True, text=True, timeout=60,
                           env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    assert ready.stdout == "searching\n", ready.stderr
