"""The search driver's heartbeat: proof, readable from any host, that a run is being searched.

While a driver searches a run, a daemon thread stamps ``nas_runs.heartbeat_at`` every
`interval_seconds()` (``NAS_HEARTBEAT_SECONDS``, default 10). A run marked ``running`` whose stamp
is older than `STALE_INTERVALS` intervals has lost its driver (SIGKILL, a dead node, a lost
network): `nas resume` may take it over from any host, and its RUNNING trials are reclaimed.
A fresh stamp means a live driver somewhere, and a second driver is refused — process ids alone
cannot say that across hosts. Set the interval alike on every host that searches one database.

The stamp is written on its own thread (its own database connection), so a trial that keeps the
driver's loop busy, or a slow database call there, never makes a live run look dead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from nas.store.models import utcnow
from nas.store.store import RunRecord, Store

STALE_INTERVALS = 3  # missed beats after which a driver counts as gone
_log = logging.getLogger(__name__)


def interval_seconds() -> float:
    """Seconds between beats: NAS_HEARTBEAT_SECONDS, default 10, at least 0.05."""
    raw = os.environ.get("NAS_HEARTBEAT_SECONDS", "10")
    try:
        return max(0.05, float(raw))
    except ValueError:
        return 10.0


def heartbeat_age(run: RunRecord, now: datetime | None = None) -> float | None:
    """Seconds since the run's driver last beat; None if it never did (a run from nas < 0.2)."""
    if run.heartbeat_at is None:
        return None
    return ((now or utcnow()) - run.heartbeat_at).total_seconds()


def driver_alive(run: RunRecord, now: datetime | None = None) -> bool | None:
    """Whether a driver is searching `run`: True if its heartbeat is fresh, False if the run is
    not running or its heartbeat is stale, None if it has no heartbeat to judge by."""
    if run.status != "running":
        return False
    age = heartbeat_age(run, now)
    if age is None:
        return None
    return age < STALE_INTERVALS * interval_seconds()


def driver_gone(run: RunRecord) -> bool:
    """Whether `run` is marked running but its driver is certainly gone: its heartbeat is
    stale, or it ran on this host and its process no longer exists."""
    if run.status != "running":
        return False
    if driver_alive(run) is False:
        return True
    return (run.host == socket.gethostname() and bool(run.driver_pid)
            and not process_exists(run.driver_pid))


def process_exists(pid: int) -> bool:
    """Whether a process with this id runs on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Context manager: beat for `run_id` on entry, then every interval until exit."""

    def __init__(self, store: Store, run_id: int, interval: float | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.interval = interval_seconds() if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nas-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def _beat(self) -> None:
        try:
            self.store.beat(self.run_id)
        except SQLAlchemyError as exc:  # the loop meets the same failure and stops the search
            _log.warning("heartbeat of run %s not written: %s", self.run_id, exc)

