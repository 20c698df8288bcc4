"""What every `nas` command shares: the consoles, the one-line error contract, the storage
option and opening the store it names, `--format` checking and RUN/NUMBER references.

Errors a user can cause (a bad space file, budget, storage URL or run name) print as one line on
stderr with exit code 2 — never a traceback (`user_errors`, `fail`). Storage: `--storage URL`,
else $NAS_STORAGE, else (for `search`) the space's `storage:`, else sqlite:///nas.db in the
working directory (`resolve_storage`); commands that read results open it with `open_store`,
which never creates a database or tables.

Light by contract: importing this (every command's start) loads typer, rich and the store's
SQLAlchemy layer, nothing heavier.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from nas.errors import NasError
from nas.store import DEFAULT_URL, Store
from nas.store.engine import database_location

F = TypeVar("F", bound=Callable[..., Any])

# Wide when piped (logs, CI): rich would otherwise wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

StorageOpt = typer.Option(None, "--storage", help="Database URL (default: $NAS_STORAGE or "
                          f"{DEFAULT_URL}).")
FormatOpt = typer.Option("table", "--format", "-f", help="Output format: table or json.")
QueryFormatOpt = typer.Option("table", "--format", "-f", help="Output format: table, json or "
                              "csv.")


MAX_MESSAGE = 2000  # characters of one error line: a message may quote data from a database


def user_errors(fn: F) -> F:
    """Print NasError, a database that cannot be read (damaged, locked, unreachable: sqlalchemy's
    DatabaseError) and a closed pipe as one line, and exit 2 (0 for the pipe). The line never
    carries markup, control characters or more than MAX_MESSAGE characters, whatever data it
    quotes."""
    from sqlalchemy.exc import DatabaseError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NasError as exc:
            fail(str(exc))
        except DatabaseError as exc:
            fail(database_failure(exc, kwargs))
        except BrokenPipeError:  # e.g. `nas trials RUN | head`
            sys.stderr.close()
            raise typer.Exit(0) from None

    return wrapper  # type: ignore[return-value]


class StoreWarnings(logging.Handler):
    """Shows the store's warnings (an artifact row it will not follow, say) as plain lines on
    the stderr of the moment, one per warning, never more than MAX_MESSAGE characters."""

    def emit(self, record: logging.LogRecord) -> None:
        from nas.cli.untrusted import plain

        sys.stderr.write(plain(record.getMessage(), MAX_MESSAGE) + "\n")


if not any(isinstance(h, StoreWarnings) for h in logging.getLogger("nas.store").handlers):
    logging.getLogger("nas.store").addHandler(StoreWarnings(logging.WARNING))


def fail(message: str) -> None:
    """Print `message` as the one error line and exit 2."""
    from nas.cli.untrusted import plain

    errors.print(f"[bold red]error:[/] {escape(plain(message, MAX_MESSAGE))}", highlight=False,
                 soft_wrap=True)
    raise typer.Exit(2) from None


def database_failure(exc: Any, options: dict[str, Any]) -> str:
    """What went wrong reading the database of a command (its --storage, unless the command
    may take it from a space file and none was given) and what to do about it."""
    from nas.cli.untrusted import plain

    reason = plain(getattr(exc, "orig", None) or exc, 200)
    url = None
    if "storage" in options and (options["storage"] or "space" not in options):
        url = resolve_storage(options["storage"])
    where = f"the database {database_location(url)}" if url else "the database"
    lowered = reason.lower()
    if "locked" in lowered or "busy" in lowered:
        fix = "another process is writing it; wait for it to finish and try again"
    elif "readonly" in lowered or "read-only" in lowered:
        fix = "it is read-only here; copy it somewhere writable, or check its permissions"
    elif url is not None and url.startswith("sqlite"):
        name = database_location(url)
        fix = (f"restore it from a backup, or recover what is readable with `sqlite3 {name} "
               f".recover | sqlite3 recovered.db` and pass --storage sqlite:///recovered.db")
    else:
        fix = "check that the server is up and the URL is right, or restore it from a backup"
    return f"cannot read {where}: {reason} — fix: {fix}"


def resolve_storage(storage: str | None, from_space: str | None = None) -> str:
    """The database URL a command uses: --storage, else $NAS_STORAGE, else the space's
    `storage:` (`from_space`, for `search`), else DEFAULT_URL."""
    return storage or os.environ.get("NAS_STORAGE") or from_space or DEFAULT_URL


def open_store(storage: str | None) -> Store:
    """The store of a command's --storage option (resolved by `resolve_storage`), opened for
    reading what is there: StoreError, never a new file or tables, when it holds no nas
    database."""
    return Store(resolve_storage(storage), create=False)


def check_format(fmt: str, formats: Sequence[str] | None = None) -> str:
    """`fmt` if it is one of `formats`: the commands that can write csv pass render.FORMATS;
    the default is table and json (e.g. `space sample`, which has no csv form)."""
    from nas.cli.render import FORMATS

    allowed = tuple(formats) if formats is not None else tuple(f for f in FORMATS if f != "csv")
    if fmt not in allowed:
        raise NasError(f"unknown --format {fmt!r}; use one of {', '.join(allowed)}")
    return fmt


MAX_TRIAL_DIGITS = 19  # 2**63 - 1, the largest trial number a database holds, has 19 digits


def trial_ref(store: Store, ref: str) -> tuple[Any, Any]:
    """(run, trial) for RUN/NUMBER; NasError if it is malformed or names nothing. NUMBER is
    ASCII digits only ('²' and '٣' pass str.isdigit, but are no trial numbers); a number no
    database can hold is simply a trial the run does not have."""
    from nas.store.untrusted import shown

    run_ref, _, number = ref.rpartition("/")
    if not run_ref or not (number.isascii() and number.isdigit()):
        raise NasError(f"expected RUN/NUMBER such as quickstart-1/3, got {shown(ref)}")
    run = store.run(run_ref)
    if len(number.lstrip("0")) > MAX_TRIAL_DIGITS:  # int() of thousands of digits is refused
        label = number if len(number) <= 30 else number[:29] + "…"
        raise NasError(f"no trial {label} in run {shown(run.name)}; "
                       "`nas trials RUN` lists the trials of a run")
    return run, store.trial(run.id, int(number))
