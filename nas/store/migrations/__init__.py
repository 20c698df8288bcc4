"""Alembic migrations of the nas schema. Run through nas.store.migrate, never by hand: the
version table is `nas_alembic_version`, so Optuna's own `alembic_version` is never touched."""
