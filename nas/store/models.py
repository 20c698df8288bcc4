"""The results schema (SQLAlchemy 2.x). Tables are prefixed `nas_` so they never collide with
Optuna's when both live in one database. No torch here: the store is pure bookkeeping."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The schema's history lives in nas/store/migrations (Alembic); these classes are its head.


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every timestamp is UTC by convention."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class RunRow(Base):
    """One `nas search`: the space it searched, its budget, and the software that ran it."""

    __tablename__ = "nas_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # running | finished | failed | interrupted
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    space_path: Mapped[str] = mapped_column(Text)
    space_text: Mapped[str] = mapped_column(Text)
    space_hash: Mapped[str] = mapped_column(String(64))
    objectives: Mapped[list[Any]] = mapped_column(JSON)  # [{"name":…, "direction":…}, …]
    strategy: Mapped[str] = mapped_column(String(32))
    seed: Mapped[int] = mapped_column(Integer)
    budget: Mapped[str] = mapped_column(String(64))  # as the user wrote it
    budget_unit: Mapped[str] = mapped_column(String(16))  # device_seconds | wall_seconds | trials
    budget_amount: Mapped[float] = mapped_column(Float)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON)  # nas, torch, python, optuna
    host: Mapped[str] = mapped_column(String(255))
    driver_pid: Mapped[int | None] = mapped_column(Integer)  # the process searching it, on host
    elapsed_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # wall time, all sessions
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)  # the driver last alive
    message: Mapped[str | None] = mapped_column(Text)  # why it stopped

    trials: Mapped[list[TrialRow]] = relationship(back_populates="run", cascade="all")


class TrialRow(Base):
    """One candidate: its ArchSpec, what happened to it, and the objective values it earned."""

    __tablename__ = "nas_trials"
    __table_args__ = (UniqueConstraint("run_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("nas_runs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # RUNNING|COMPLETE|FAIL|DUPLICATE|INFEASIBLE
    spec_json: Mapped[str] = mapped_column(Text)
    arch_hash: Mapped[str] = mapped_column(String(32), index=True)
    config_hash: Mapped[str] = mapped_column(String(32), index=True)
    short_form: Mapped[str] = mapped_column(String(255))
    d_model: Mapped[int] = mapped_column(Integer)
    n_layers: Mapped[int] = mapped_column(Integer)
    params: Mapped[int | None] = mapped_column(Integer)
    values: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # objective name -> value
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # everything measured
    pareto: Mapped[bool] = mapped_column(Boolean, default=False)
    device: Mapped[str | None] = mapped_column(String(255))
    worker: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    device_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    failure: Mapped[str | None] = mapped_column(String(16))  # nas.failures class; None: no failure
    duplicate_of: Mapped[int | None] = mapped_column(Integer)  # trial number in the same run
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the strategy decided (nas's tables are its single truth: a resume rebuilds it from
    # these): decision name -> value, its own per-trial state, the trial this one retrains.
    decisions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    strategy_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    retrain_of: Mapped[int | None] = mapped_column(Integer)

    run: Mapped[RunRow] = relationship(back_populates="trials")
    curve: Mapped[list[MetricRow]] = relationship(cascade="all, delete-orphan",
                                                  order_by="MetricRow.step")
    artifacts: Mapped[list[ArtifactRow]] = relationship(cascade="all")


class MetricRow(Base):
    """One point of a trial's curves (train loss every few steps, final validation metrics)."""

    __tablename__ = "nas_metrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("nas_trials.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)


class LedgerRow(Base):
    """The budget ledger: every charge against a run's budget, finished or failed trial alike."""

    __tablename__ = "nas_budget_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("nas_runs.id", ondelete="CASCADE"), index=True)
    trial_number: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    device_seconds: Mapped[float] = mapped_column(Float)
    wall_seconds: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(String(64))


class ArtifactRow(Base):
    """A file a trial left behind (its trained weights): where it is, its size and checksum.

    `path` is relative to the artifacts root of the database (see nas.store.artifacts) unless
    it is absolute. A row exists exactly while the file is meant to exist."""

    __tablename__ = "nas_artifacts"
    __table_args__ = (UniqueConstraint("trial_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("nas_trials.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))  # "weights"
    path: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LatencyRow(Base):
    """One latency measurement of an architecture, on one device, at one shape and phase: the
    latency cache. A candidate whose architecture was measured on the same device fingerprint
    (nas.evaluate.device.device_fingerprint) at the same shape is not measured again."""

    __tablename__ = "nas_latency"
    __table_args__ = (UniqueConstraint("arch_hash", "fingerprint_hash", "phase", "batch",
                                       "seq_len"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    arch_hash: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint_hash: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[dict[str, Any]] = mapped_column(JSON)
    phase: Mapped[str] = mapped_column(String(16))
    batch: Mapped[int] = mapped_column(Integer)
    seq_len: Mapped[int] = mapped_column(Integer)
    median_ms: Mapped[float] = mapped_column(Float)
    spread: Mapped[float] = mapped_column(Float)
    repeats: Mapped[int] = mapped_column(Integer)
    measured_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ArchitectureRow(Base):
    """One distinct architecture (by arch_hash) a run of this database has trained, with its
    analytic costs at the task's sequence length, so architectures can be queried apart from
    the trials (several trials may train one architecture with different recipes)."""

    __tablename__ = "nas_architectures"

    id: Mapped[int] = mapped_column(primary_key=True)
    arch_hash: Mapped[str] = mapped_column(String(64), unique=True)
    spec_json: Mapped[str] = mapped_column(Text)  # the ArchSpec, training recipe included
    short_form: Mapped[str] = mapped_column(String(255))
    params: Mapped[int] = mapped_column(BigInteger)
    seq_len: Mapped[int] = mapped_column(Integer)  # the context of the two costs below
    flops_per_token: Mapped[float] = mapped_column(Float)
    state_bytes: Mapped[int] = mapped_column(BigInteger)  # fp32 decode state per sequence
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
