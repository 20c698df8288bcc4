"""Whether this driver may take up a stopped run (`nas resume`): refused while another driver
searches it, or when its folder leads outside the artifacts root. Both checks run before the
run is reopened, so a refusal writes nothing."""

from __future__ import annotations

import socket

from nas.errors import StoreError
from nas.orchestrator.heartbeat import (
    STALE_INTERVALS,
    driver_alive,
    driver_gone,
    heartbeat_age,
    interval_seconds,
)
from nas.store import RunRecord, Store


def refuse_if_alive(run: RunRecord, url: str) -> None:
    """Two drivers on one run would both write: refuse while the recorded one is alive.

    On the driver's own host its process id decides (a dead pid frees the run at once), unless
    its heartbeat is stale (the pid was reused). Elsewhere the heartbeat decides: fresh means a
    live driver, stale (nas.orchestrator.heartbeat) means it is gone. Runs from before heartbeats
    fall back to the old rule: another host's driver cannot be checked, and with SQLite (one
    machine, one writer) that is refused."""
    from nas.store.engine import sqlite_path

    if run.status != "running" or not run.driver_pid:
        return
    alive = driver_alive(run)
    if run.host == socket.gethostname():
        if driver_gone(run):
            return  # it died without finishing the run: safe to take over
        server = "" if sqlite_path(url) is None else (
            " (a SQLite database takes one search driver per run; several need PostgreSQL)")
        raise StoreError(f"run {run.name!r} is still being searched by process "
                         f"{run.driver_pid} on this host; stop it (Ctrl-C) before resuming{server}")
    if alive is False:
        return  # its heartbeat stopped: the driver is gone, wherever it ran
    if alive:
        limit = STALE_INTERVALS * interval_seconds()
        raise StoreError(
            f"run {run.name!r} is being searched by process {run.driver_pid} on host "
            f"{run.host} (heartbeat {heartbeat_age(run):.0f} s ago); stop it there first. If that "
            f"driver is gone, the run can be resumed once its heartbeat is {limit:.0f} s old")
    if sqlite_path(url) is not None:
        raise StoreError(
            f"run {run.name!r} is marked running by process {run.driver_pid} on host "
            f"{run.host}; a SQLite database takes one search driver per run — several "
            "drivers need a server database (postgresql://...). If that driver is dead, "
            "resume from its host")


def check_run_folder(store: Store, run: RunRecord) -> None:
    """Resuming writes checkpoints and weights into the run's folder. A database may have been
    edited by hand: refuse (StoreError, one line) a run whose name is no plain folder name or
    whose folder is a link leading out of the artifacts root, before anything is written."""
    from nas.store.artifacts import OutsideFolder, run_directory

    try:
        run_directory(store.artifacts_root, store.run_folder(run.name))
    except OutsideFolder as exc:
        raise StoreError(f"cannot resume run {run.name!r}: {exc}; fix: replace the link by a "
                         "plain folder (or move the files back into one)") from None
