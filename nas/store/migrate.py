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

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from nas.errors import StoreError

HEAD = "0003"  # the newest revision in migrations/versions (a test keeps the two in step)
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
    """Upgrade the database behind `engine` to HEAD (see the module docstring)."""
    with engine.connect() as connection:
        revision = current_revision(connection)
        has_runs = inspect(connection).has_table("nas_runs")
    if revision == HEAD:
        return
    if revision is not None and revision not in known_revisions():
        raise StoreError(
            f"the database {url} has nas schema revision {revision!r}, newer than this nas knows "
            f"(up to {HEAD!r}); upgrade nas (pip install -U nas) to read it")
    upgrade(engine, stamp_first=revision is None and has_runs)


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
