"""Alembic environment: migrate the connection nas.store.migrate hands over (online only).

Only tables named nas_* are nas's: autogenerate ignores everything else in the database (Optuna's
tables live beside ours)."""

from __future__ import annotations

from alembic import context

from nas.store.models import Base

VERSION_TABLE = "nas_alembic_version"


def _ours(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001 (alembic's hook)
    return type_ != "table" or str(name).startswith("nas_")


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_object=_ours,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER via table copies
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("nas migrations run online only, through nas.store.migrate")
run_migrations_online()
