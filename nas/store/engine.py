"""Opening a database URL: the SQLAlchemy engine, SQLite's pragmas and file checks, URL helpers.

The one place that turns a storage URL into an Engine (`make_engine`): SQLite files get their
folder created, WAL, a 30 s busy timeout, foreign keys and `synchronous=NORMAL` on every
connection; in-memory SQLite shares one connection; server URLs get `pool_pre_ping`. A URL that
cannot be parsed, a file that cannot be a database, a folder that cannot be made: StoreError,
one line with the fix. Nothing here reads or writes nas's tables (nas.store.store does), so the
artifacts module can name files from a URL without importing the store.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from nas.errors import StoreError
from nas.store.untrusted import shown

DEFAULT_URL = "sqlite:///nas.db"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other backends and in-memory databases)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    try:
        return Path(parsed.database).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a name too long, a loop of links
        raise StoreError(f"cannot open the database {shown(parsed.database)}: {exc} — "
                         f"{_FILE_FIX}") from None


_FILE_FIX = ("fix: pass --storage (or set NAS_STORAGE) to sqlite:///FOLDER/nas.db, a database "
             "file (or a new file's name) in a folder you can write")


def check_sqlite_file(path: Path) -> bool:
    """Whether the SQLite file `path` exists (False: a new database may be made there).
    StoreError, before anything is created beside it, when it cannot be a database file: a
    device, a folder or another special file (`sqlite:////dev/zero`), or a path the system
    refuses (a name too long, a folder in the way, no permission)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"cannot open the database {shown(str(path))}: "
                         f"{exc.strerror or exc} — {_FILE_FIX}") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode)
                or stat.S_ISBLK(mode) else "a pipe or socket" if stat.S_ISFIFO(mode)
                or stat.S_ISSOCK(mode) else "a special file")
        raise StoreError(f"cannot open the database {shown(str(path))}: it is {kind}, not a "
                         f"file — {_FILE_FIX}")
    return True


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and its folder created."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"cannot parse storage URL {url!r}; use e.g. sqlite:///nas.db or "
            "postgresql://user@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot open the database {shown(parsed.database)}: cannot "
                                 f"make its folder {shown(str(folder))} "
                                 f"({exc.strerror or exc}) — {_FILE_FIX}") from None
        if parsed.database in (None, "", ":memory:"):
            # One connection shared by every session, else each would see its own empty database.
            engine = create_engine(parsed, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})
        else:
            engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except Exception as exc:  # a missing driver, for one
        raise StoreError(f"cannot open storage {url!r}: {exc}") from None


def has_nas_tables(engine: Engine) -> bool:
    """Whether the database behind `engine` holds nas's runs table."""
    from sqlalchemy import inspect

    with engine.connect() as connection:
        return inspect(connection).has_table("nas_runs")


def database_location(url: str) -> str:
    """Where the database of `url` is, for people: an absolute file path for SQLite URLs, the
    URL with its password hidden otherwise."""
    path = sqlite_path(url)
    return str(path) if path else make_url(url).render_as_string(hide_password=True)
