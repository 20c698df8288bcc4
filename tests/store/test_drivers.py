"""One search driver per run with SQLite: a second one is refused with a message that says
why (and that several drivers need a server database)."""

from __future__ import annotations

import os
import socket

import pytest

from nas.errors import StoreError
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.search import SearchOptions, resume_search
from nas.store import Store


def running_run(url: str, host: str, pid: int) -> None:
    store = Store(url)
    store.create_run(
        name="busy", base_name="x", space_path="s.yaml", space_text="name: x", space_hash="h",
        objectives=[], strategy="tpe", seed=0, budget="1trials", budget_unit="trials",
        budget_amount=1, versions={}, host=host, driver_pid=pid)
    store.close()


def test_a_live_driver_on_this_host_is_not_joined(tmp_path):
    url = f"sqlite:///{tmp_path}/nas.db"
    running_run(url, socket.gethostname(), os.getpid())
    with pytest.raises(StoreError, match="still being searched .* several need PostgreSQL"):
        resume_search("busy", SearchOptions(budget=None, storage=url), NullReporter())


def test_a_driver_on_another_host_is_refused_with_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/nas.db"
    running_run(url, "elsewhere.example", 4242)
    with pytest.raises(StoreError, match="elsewhere.example; a SQLite database takes one search "
                                         "driver per run .*postgresql"):
        resume_search("busy", SearchOptions(budget=None, storage=url), NullReporter())
    assert Store(url).run("busy").status == "running"  # nothing was taken over
