"""The driver's heartbeat: stamped while a search runs, and what decides whether a run marked
running may be taken over — from this host or another one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from nas.budget import parse_budget
from nas.errors import StoreError
from nas.orchestrator.heartbeat import Heartbeat, driver_alive
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, resume_search, run_search
from nas.searchspace import loads
from nas.store import Store
from nas.store.models import RunRow


@pytest.fixture
def fast_beats(monkeypatch):
    monkeypatch.setenv("NAS_HEARTBEAT_SECONDS", "0.1")  # stale after 0.3 s


def finished_run(tmp_path, space_text) -> tuple[Store, str]:
    url = f"sqlite:///{tmp_path}/nas.db"
    outcome = run_search(loads(space_text, "space.yaml"),
                         SearchOptions(budget=parse_budget("1trials"), storage=url, threads=1),
                         NullReporter())
    return Store(url), outcome.run_name


def mark_running(store: Store, name: str, host: str, pid: int) -> None:
    """Make the run look as if a driver (host, pid) were searching it and had just beaten."""
    run = store.run(name)
    with store.transaction() as s:
        row = s.get(RunRow, run.id)
        row.status, row.host, row.driver_pid, row.finished_at = "running", host, pid, None
    store.beat(run.id)


def test_the_heartbeat_advances_while_held_and_stops_after(tmp_path, tiny_space_text, fast_beats):
    store, name = finished_run(tmp_path, tiny_space_text)
    run_id = store.run(name).id
    assert store.run(name).heartbeat_at is not None  # the search itself beat
    with Heartbeat(store, run_id, interval=0.05):
        first = store.run(name).heartbeat_at
        time.sleep(0.3)
        second = store.run(name).heartbeat_at
    assert second > first
    last = store.run(name).heartbeat_at  # one more beat may land between `second` and the exit
    assert last >= second
    time.sleep(0.2)
    assert store.run(name).heartbeat_at == last  # none after it


def test_a_driver_on_another_host_is_refused_while_it_beats(tmp_path, tiny_space_text,
                                                            fast_beats):
    store, name = finished_run(tmp_path, tiny_space_text)
    mark_running(store, name, host="node-7.example", pid=4242)
    assert driver_alive(store.run(name)) is True
    options = SearchOptions(budget=parse_budget("2trials"), storage=store.url, threads=1)
    with pytest.raises(StoreError, match="process 4242 on host node-7.example .heartbeat"):
        resume_search(name, options, NullReporter())

    time.sleep(0.4)  # its heartbeat goes stale: that driver is gone
    assert driver_alive(store.run(name)) is False
    outcome = resume_search(name, options, NullReporter())
    assert outcome.status == "finished"
    assert store.run(name).host == os.uname().nodename


def test_a_live_pid_with_a_stale_heartbeat_is_a_reused_pid(tmp_path, tiny_space_text,
                                                          fast_beats):
    store, name = finished_run(tmp_path, tiny_space_text)
    mark_running(store, name, host=os.uname().nodename, pid=os.getpid())  # alive, not a driver
    options = SearchOptions(budget=parse_budget("2trials"), storage=store.url, threads=1)
    with pytest.raises(StoreError, match="still being searched"):
        resume_search(name, options, NullReporter())
    time.sleep(0.4)
    assert resume_search(name, options, NullReporter()).status == "finished"


def test_runs_listing_marks_a_stalled_run(tmp_path, tiny_space_text, fast_beats):
    from nas.cli.render import run_status, run_to_dict

    store, name = finished_run(tmp_path, tiny_space_text)
    mark_running(store, name, host="node-7.example", pid=4242)
    assert run_status(store.run(name)) == "running"
    time.sleep(0.4)
    assert run_status(store.run(name)).startswith("stalled")
    assert run_to_dict(store.run(name))["stalled"] is True
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a driver on this host whose process has exited: stalled at once, fresh beat
    mark_running(store, name, host=socket.gethostname(), pid=gone.pid)
    assert run_status(store.run(name)).startswith("stalled")
