"""Schema versions: bring a database to the head revision of nas/store/migrations (Alembic).

`ensure_current(engine)` is what Store calls when it opens a database:

- no nas tables yet: create them by running every migration;
- nas tables but no version table (made by nas 0.1, before migrations): stamp it at the first
  revision, then upgrade;
- an older revision: upgrade (migrations only add, so nothing is lost);
- the head: nothing to do (checked with one query; Alembic is not even imported);
- a revision this nas does not know (written by a newer nas): StoreError, nothing touched.

The version table is `nas_alembic_version`, so Optuna's `alembic_version` in the same database is
never read or written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from nas.errors import StoreError
from nas.store.untrusted import shown

HEAD = "0006"  # the newest revision in migrations/versions (a test keeps the two in step)
FIRST = "0001"
VERSION_TABLE = "nas_alembic_version"
MIGRATIONS = Path(__file__).parent / "migrations"


def current_revision(connection: Connection) -> str | None:
    """The revision stamped in the database; None where no version table exists."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def known_revisions() -> list[str]:
    """Every revision of migrations/versions, oldest first."""
    script = _script_directory()
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def ensure_current(engine: Engine, url: str) -> None:
    """Upgrade the database behind `engine` to HEAD (see the module docstring). Processes that
    open one new database at once (a search starting while `nas runs` looks at it) migrate it
    one at a time: the first upgrades, the others find it current."""
    revision, has_runs = _state(engine)
    if revision == HEAD:
        return
    with _migration_lock(engine):
        revision, has_runs = _state(engine)  # another process may have migrated meanwhile
        if revision == HEAD:
            return
        if revision is not None and revision not in known_revisions():
            raise StoreError(
                f"the database {url} has nas schema revision {revision!r}, newer than this nas "
                f"knows (up to {HEAD!r}); upgrade nas (pip install -U nas) to read it")
        upgrade(engine, stamp_first=revision is None and has_runs)


def _state(engine: Engine) -> tuple[str | None, bool]:
    """(stamped revision, whether nas_runs exists)."""
    with engine.connect() as connection:
        return current_revision(connection), inspect(connection).has_table("nas_runs")


MIGRATION_LOCK_KEY = 0x6E61730001  # PostgreSQL advisory lock id ("nas", 1)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Hold a lock that every nas process takes before migrating this database: an advisory
    lock on PostgreSQL, an flock on ``<file>.migrate-lock`` beside a SQLite file (SQLite runs
    DDL outside transactions here, so two concurrent migrations would interleave)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                connection.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    import fcntl
    import os
    import stat

    # Never beside something that is no database file (`/dev/zero.migrate-lock`): the file is a
    # regular one, or a new one in an existing folder (Store checks both before it gets here).
    try:
        mode = os.stat(database).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise StoreError(f"cannot open the database {shown(database)}: "
                         f"{exc.strerror or exc}") from None
    if (mode is not None and not stat.S_ISREG(mode)) or not os.path.isdir(
            os.path.dirname(os.path.abspath(database))):
        raise StoreError(f"cannot open the database {shown(database)}: it is no database "
                         "file; pass --storage (or set NAS_STORAGE) to sqlite:///FOLDER/nas.db")
    try:
        handle = open(f"{database}.migrate-lock", "a")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise StoreError(f"cannot open the database {shown(database)}: cannot make its lock "
                         f"file beside it ({exc.strerror or exc})") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def upgrade(engine: Engine, revision: str = "head", stamp_first: bool = False) -> None:
    """Run the migrations up to `revision`; stamp_first marks an unversioned 0.1 database as
    FIRST before upgrading it."""
    from alembic import command

    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch operations may copy tables; cascades must not fire on the copies.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        config = _config(connection)
        if stamp_first:
            command.stamp(config, FIRST)
        command.upgrade(config, revision)
        connection.commit()
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def _config(connection: Connection):  # -> alembic.config.Config
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _script_directory():  # -> alembic.script.ScriptDirectory
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)
