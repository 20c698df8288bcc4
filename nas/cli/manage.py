"""`nas rm`: delete a run with everything it owns (trials, curves, kept weights, budget ledger,
Optuna study), after a confirmation unless --yes, never while its search driver is alive on
this host.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from nas.cli.common import StorageOpt, console, errors, open_store, user_errors
from nas.errors import NasError
from nas.store.engine import database_location


@user_errors
def rm(
    run: str = typer.Argument(..., help="Run name (or id)."),
    storage: str = StorageOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete RUN: its trials, curves, kept weights, budget ledger and Optuna study."""
    store = open_store(storage)
    url = store.url
    record = store.run(run)
    _refuse_if_searching(record)
    from nas.cli.untrusted import markup, plain

    if not yes:
        question = (f"Delete run {plain(repr(record.name))} with its {record.trials_total} "
                    f"trials from {database_location(url)}?")
        try:
            confirmed = typer.confirm(question, default=False)
        except typer.Abort:  # end of input
            confirmed = False
        if not confirmed:
            errors.print("aborted: nothing deleted", highlight=False)
            raise typer.Exit(1)
    # The study first: if the store's delete then failed, `nas rm` again finishes the job.
    _delete_study(record.name, url)
    store.delete_run(record.id)
    console.print(f"deleted run [bold]{markup(record.name)}[/] ({record.trials_total} trials)",
                  highlight=False)


def _refuse_if_searching(run: Any) -> None:
    """A run whose search driver is alive on this host is not deleted under its feet."""
    import socket

    if run.status != "running" or not run.driver_pid or run.host != socket.gethostname():
        return
    try:
        os.kill(run.driver_pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise NasError(f"run {run.name!r} is still being searched by process {run.driver_pid}; "
                   "stop it (Ctrl-C) before deleting it")


def _delete_study(name: str, url: str) -> None:
    """Delete the run's Optuna study from `url`; a study that is not there is fine."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna.delete_study(study_name=name, storage=url)
    except KeyError:
        pass
