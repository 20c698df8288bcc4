"""optuna-dashboard keeps working on nas's database: the real dashboard server, started on
127.0.0.1 against a searched run's database, serves the run's study over its HTTP API with the
values nas holds (the front's re-measured latencies included)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nas.budget import parse_budget
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, Store

DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.skipif(not DASHBOARD.exists(), reason="optuna-dashboard is not installed "
                    "(it is in the test extra: make install)")
def test_the_dashboard_serves_the_run_as_nas_stores_it(tmp_path, tiny_space_text):
    url = f"sqlite:///{tmp_path}/nas.db"
    outcome = run_search(loads(tiny_space_text, "space.yaml"),
                         SearchOptions(budget=parse_budget("3trials"), storage=url, threads=1),
                         NullReporter())
    trials = Store(url).trials(outcome.run_name)
    assert any("latency_ms_initial" in (t.metrics or {}) for t in trials)  # re-measured
    port = free_port()
    server = subprocess.Popen([str(DASHBOARD), url, "--host", "127.0.0.1", "--port", str(port),
                               "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get(port, "/api/studies")["study_summaries"]
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        [study] = [s for s in studies if s["study_name"] == outcome.run_name]
        detail = get(port, f"/api/studies/{study['study_id']}")
        served = {t["number"]: t for t in detail["trials"]}
        assert sorted(served) == [t.number for t in trials]
        for trial in trials:
            if trial.state == COMPLETE:
                assert served[trial.number]["values"] == [trial.values["accuracy"],
                                                          trial.values["latency_ms"]]
    finally:
        server.terminate()  # by its pid
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
