"""Schema versions: revision 0001 is nas 0.1's schema, head is today's models, a 0.1 database
upgrades in place with its rows intact, a newer schema is refused, Optuna's tables are left
alone."""

from __future__ import annotations

import json
from datetime import datetime

import legacy_models_0001 as legacy  # beside this file (pytest puts the folder on sys.path)
import optuna
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text

from nas.errors import StoreError
from nas.store import Store, migrate
from nas.store.models import Base

NOW = datetime(2025, 1, 2, 3, 4, 5)


def schema(url: str) -> dict:
    """Tables -> (columns with type, nullability; indexes; unique constraints), as reflected."""
    engine = create_engine(url)
    found = {}
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in sorted(t for t in inspector.get_table_names() if t.startswith("nas_runs")
                            or t in ("nas_trials", "nas_metrics", "nas_budget_ledger",
                                     "nas_artifacts")):
            found[table] = (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
                sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
                sorted((tuple(f["constrained_columns"]), f["referred_table"])
                       for f in inspector.get_foreign_keys(table)),
            )
    engine.dispose()
    return found


def legacy_database(url: str) -> None:
    """A database as nas 0.1 left it (create_all of its models, no version table), with a run,
    two trials, a curve and ledger rows inserted through SQLAlchemy core."""
    engine = create_engine(url)
    legacy.Base.metadata.create_all(engine)
    run = dict(name="old-1", status="finished", created_at=NOW, space_path="s.yaml",
               space_text="name: old", space_hash="h", strategy="tpe", seed=0, budget="2trials",
               budget_unit="trials", budget_amount=2.0, host="h", elapsed_seconds=3.0,
               objectives=[{"name": "accuracy", "direction": "maximize"}],
               versions={"nas": "0.1.0"})
    spec = {"d_model": 16, "vocab_size": 16, "norm": "rmsnorm", "layers": [], "training": {}}
    with engine.begin() as c:
        run_id = c.execute(insert(legacy.RunRow.__table__).values(**run)).inserted_primary_key[0]
        for number, accuracy in ((0, 0.5), (1, 0.75)):
            trial_id = c.execute(insert(legacy.TrialRow.__table__).values(
                run_id=run_id, number=number, state="COMPLETE", spec_json=json.dumps(spec),
                arch_hash=f"a{number}", config_hash=f"c{number}", short_form="A", d_model=16,
                n_layers=1, params=100, values={"accuracy": accuracy},
                metrics={"accuracy": accuracy}, pareto=number == 1, started_at=NOW,
                device_seconds=1.5)).inserted_primary_key[0]
            c.execute(insert(legacy.MetricRow.__table__).values(
                trial_id=trial_id, step=10, name="train_loss", value=2.0))
            c.execute(insert(legacy.LedgerRow.__table__).values(
                run_id=run_id, trial_number=number, at=NOW, device_seconds=1.5,
                wall_seconds=1.5, note="complete"))
    engine.dispose()


def test_first_revision_is_the_schema_nas_0_1_created(tmp_path):
    by_create_all, by_migration = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    create_engine(by_create_all).connect().close()
    legacy.Base.metadata.create_all(create_engine(by_create_all))
    migrate.upgrade(create_engine(by_migration), migrate.FIRST)
    assert schema(by_migration) == schema(by_create_all)


def test_head_is_the_models_and_the_newest_revision(tmp_path):
    url = f"sqlite:///{tmp_path}/nas.db"
    Store(url).close()
    assert migrate.known_revisions()[-1] == migrate.HEAD
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_object": lambda obj, name, type_, *a: type_ != "table"
            or name.startswith("nas_") and name != migrate.VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
        assert migrate.current_revision(connection) == migrate.HEAD


def test_a_0_1_database_upgrades_with_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    legacy_database(url)
    store = Store(url, create=False)  # queries upgrade too: the new columns are read
    run = store.run("old-1")
    assert (run.trials_complete, run.device_seconds) == (2, 3.0)
    trials = store.trials("old-1")
    assert [(t.number, t.values["accuracy"], t.retries) for t in trials] == [
        (0, 0.5, 0), (1, 0.75, 0)]
    assert [t.number for t in store.pareto("old-1")] == [1]
    assert store.curve("old-1", 0) == [(10, "train_loss", 2.0)]
    assert store.artifacts("old-1") == []
    with store.engine.connect() as connection:
        assert inspect(connection).has_table("nas_artifacts")
        assert migrate.current_revision(connection) == migrate.HEAD
    store.delete_run("old-1")  # and the upgraded schema takes writes
    assert store.runs() == []


def test_a_newer_schema_is_refused_untouched(tmp_path):
    url = f"sqlite:///{tmp_path}/new.db"
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(StoreError, match="revision '9999', newer than this nas knows"):
        Store(url)
    with engine.connect() as c:
        assert c.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).scalar() \
            == "9999"


def test_optunas_tables_and_version_are_left_alone(tmp_path):
    url = f"sqlite:///{tmp_path}/both.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="s", storage=url).optimize(lambda t: t.suggest_float("x", 0, 1),
                                                              n_trials=2)
    engine = create_engine(url)
    with engine.connect() as c:
        optuna_version = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
    Store(url).close()
    with engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == optuna_version
        assert c.execute(select(text("count(*)")).select_from(text("trials"))).scalar() == 2
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2
