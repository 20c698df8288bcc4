"""The results store: one class over one database URL, one transaction helper, typed records.

The search driver is the only writer. Each trial's outcome (state, values, curve, budget charge
and the refreshed Pareto flags) is committed in one transaction, so a crash at any moment leaves
every finished trial intact and never half a trial. SQLite runs in WAL mode with a busy timeout,
so queries from another terminal never block a live search.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from nas.errors import StoreError
from nas.failures import ABANDONED, ERROR, LOST, OOM, UNFINISHED
from nas.spec import RUN_NAME, ArchSpec
from nas.store.artifacts import (
    KEEP_POLICIES,
    ArtifactFile,
    OtherDatabase,
    OutsideFolder,
    artifacts_root,
    locate,
    rebased,
    remove_if_empty,
    remove_quietly,
    run_folder,
    sweep_orphans,
)
from nas.store.engine import (
    DEFAULT_URL,
    check_sqlite_file,
    has_nas_tables,
    make_engine,
    sqlite_path,
)
from nas.store.migrate import ensure_current
from nas.store.models import (
    ArchitectureRow,
    ArtifactRow,
    LatencyRow,
    LedgerRow,
    MetricRow,
    RunRow,
    TrialRow,
    utcnow,
)
from nas.store.untrusted import (
    curve_point,
    integer,
    json_object,
    number,
    numbers_by_name,
    objective_values,
    objectives_list,
    one_line,
    reading,
    shown,
    text,
)
from nas.strategies.pareto import dominates, pareto_mask

MAX_ROW_ID = 2**63 - 1  # run ids and trial numbers are 64-bit integers in every backend
_log = logging.getLogger("nas.store")
_CONTENDED = "contended"  # latency-cache rows: fingerprint JSON key of a contended timing
RUNNING, COMPLETE, FAIL, DUPLICATE = "RUNNING", "COMPLETE", "FAIL", "DUPLICATE"
INFEASIBLE = "INFEASIBLE"  # failed the space's constraints: never trained, charged nothing
PAUSED = "PAUSED"  # multi-fidelity: stopped at a rung, may be promoted and resumed
PRUNED = "PRUNED"  # multi-fidelity: stopped at a rung for good (its curve is kept)
TRIAL_STATES = (RUNNING, COMPLETE, FAIL, DUPLICATE, INFEASIBLE, PAUSED, PRUNED)


@dataclass(frozen=True)
class RunRecord:
    id: int
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    space_path: str
    space_hash: str
    space_text: str
    objectives: list[dict[str, str]]
    strategy: str
    seed: int
    budget: str
    budget_unit: str
    budget_amount: float
    versions: dict[str, str]
    host: str
    message: str | None
    driver_pid: int | None = None
    elapsed_seconds: float = 0.0
    heartbeat_at: datetime | None = None  # when the driver last said it was alive (UTC)
    trials_complete: int = 0
    trials_total: int = 0
    device_seconds: float = 0.0

    @property
    def directions(self) -> list[str]:
        return [o["direction"] for o in self.objectives]

    @property
    def objective_names(self) -> list[str]:
        return [o["name"] for o in self.objectives]


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str
    spec: dict[str, Any]
    arch_hash: str
    config_hash: str
    short_form: str
    d_model: int
    n_layers: int
    params: int | None
    values: dict[str, float] | None
    metrics: dict[str, float] | None
    pareto: bool
    device: str | None
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    device_seconds: float
    error: str | None
    duplicate_of: int | None

    retries: int = 0
    failure: str | None = None  # why it failed (nas.failures); None: it did not

    @property
    def arch(self) -> ArchSpec:
        """The trial's ArchSpec (architecture and training recipe)."""
        return ArchSpec.from_dict(self.spec)

    @property
    def timings(self) -> dict[str, Any]:
        """When it ran and what it cost: started_at, finished_at, device_seconds,
        train_seconds and every latency measured (median ms; *_spread beside each)."""
        metrics = self.metrics or {}
        latency = {k: v for k, v in metrics.items() if k.startswith("latency")}
        return {"started_at": self.started_at, "finished_at": self.finished_at,
                "device_seconds": self.device_seconds,
                "train_seconds": metrics.get("train_seconds"), **latency}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO strings."""
        out = asdict(self)
        for key in ("started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


@dataclass(frozen=True)
class LedgerEntry:
    """One charge against a run's budget, in the order it was made: the trial (None for work
    of the run as a whole), how it ended ("complete", "rung", "lost", "fail", ...), when."""

    trial_number: int | None
    note: str
    device_seconds: float
    wall_seconds: float
    at: datetime


@dataclass(frozen=True)
class ArtifactRecord:
    """A kept file of a trial (its trained weights): `path` as stored (relative to the
    artifacts root unless absolute), `file` where it is on this machine — always inside the
    run's artifacts folder (see nas.store.artifacts.confine; rows naming anything else are
    never turned into records)."""

    number: int
    kind: str
    path: str
    file: Path
    bytes: int
    sha256: str
    created_at: datetime


def _run_record(row: RunRow, complete: int = 0, total: int = 0, used: float = 0.0) -> RunRecord:
    """The record of a run row, its columns checked (ValueError for a malformed one: see
    nas.store.untrusted)."""
    return RunRecord(
        id=row.id, name=text(row.name, "name"), status=text(row.status, "status"),
        created_at=row.created_at, finished_at=row.finished_at,
        space_path=text(row.space_path, "space_path"),
        space_hash=text(row.space_hash, "space_hash"),
        space_text=text(row.space_text, "space_text"),
        objectives=objectives_list(row.objectives), strategy=text(row.strategy, "strategy"),
        seed=integer(row.seed, "seed", nullable=True), budget=text(row.budget, "budget"),
        budget_unit=text(row.budget_unit, "budget_unit"),
        budget_amount=number(row.budget_amount, "budget_amount"),
        versions=dict(json_object(row.versions, "versions")),
        host=text(row.host, "host"), message=text(row.message, "message", nullable=True),
        driver_pid=integer(row.driver_pid, "driver_pid", nullable=True),
        elapsed_seconds=number(row.elapsed_seconds, "elapsed_seconds", nullable=True) or 0.0,
        heartbeat_at=row.heartbeat_at, trials_complete=complete, trials_total=total,
        device_seconds=number(used, "device_seconds"),
    )


def _objective_names(run: RunRow) -> list[str]:
    """The names of a run row's objectives, checked (ValueError for malformed ones)."""
    return [o["name"] for o in objectives_list(run.objectives)]


@dataclass(frozen=True)
class Decision:
    """What a strategy decided for one trial: the decision values it chose (name -> value,
    as the space's graph asked them), its own JSON-able per-trial state, and the trial whose
    configuration this one trains again (None: a fresh proposal)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)
    retrain_of: int | None = None


def _decision(values: Any, state: Any, retrain_of: Any) -> Decision | None:
    """A stored decision, checked (ValueError for a malformed one); None where none was
    stored."""
    if values is None:
        return None
    values = json_object(values, "decisions")
    for name, value in values.items():
        if value is not None and not isinstance(value, bool | int | float | str):
            raise ValueError(f"decisions: {name!r} is {type(value).__name__}, not a number, "
                             "a string, true/false or null")
    return Decision(values, json_object(state or {}, "strategy_state"),
                    integer(retrain_of, "retrain_of", nullable=True))


def _mapping(value: Any) -> dict[str, Any]:
    """A JSON column expected to hold an object, as a dict ({} for anything else a foreign or
    hand-edited database may hold there)."""
    return value if isinstance(value, dict) else {}


def _trial_record(row: TrialRow, objectives: list[str]) -> TrialRecord:
    """The record of a trial row, its columns checked (ValueError for a malformed one: see
    nas.store.untrusted). A COMPLETE trial must hold a number for each of its run's
    `objectives` (a hand-edited one without would break every Pareto front and resume)."""
    trial_number = integer(row.number, "number")
    values = numbers_by_name(row.values, "values")
    if row.state == COMPLETE:
        values = objective_values(values, objectives, trial_number)
    return TrialRecord(
        number=trial_number, state=text(row.state, "state"),
        spec=json_object(json.loads(text(row.spec_json, "spec_json")), "spec_json"),
        arch_hash=text(row.arch_hash, "arch_hash"),
        config_hash=text(row.config_hash, "config_hash"),
        short_form=text(row.short_form, "short_form"), d_model=integer(row.d_model, "d_model"),
        n_layers=integer(row.n_layers, "n_layers"),
        params=integer(row.params, "params", nullable=True),
        values=values,
        metrics=numbers_by_name(row.metrics, "metrics"), pareto=bool(row.pareto),
        device=text(row.device, "device", nullable=True),
        worker=text(row.worker, "worker", nullable=True), started_at=row.started_at,
        finished_at=row.finished_at,
        device_seconds=number(row.device_seconds, "device_seconds", nullable=True) or 0.0,
        error=text(row.error, "error", nullable=True),
        duplicate_of=integer(row.duplicate_of, "duplicate_of", nullable=True),
        retries=integer(row.retries, "retries", nullable=True) or 0,
        failure=text(row.failure, "failure", nullable=True),
    )


OPEN_ATTEMPTS = 6  # opening a new SQLite file another process is creating: 0.1 s .. 3.2 s apart


def as_row_id(ref: object) -> int | None:
    """`ref` as a run id or trial number: ASCII digits whose value fits 64 bits, else None."""
    text = str(ref)
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_ROW_ID else None


def row_params(metrics: dict[str, float] | None) -> int | None:
    """The parameter count a trial's metrics report, for its `params` column."""
    return int(metrics["params"]) if metrics and "params" in metrics else None


class Store:
    """All reads and writes of nas results. Thread-safe for readers; one writer (the driver)."""

    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True) -> None:
        """Open `url`, creating missing tables and upgrading an older schema to the head
        revision (nas.store.migrate); a schema newer than this nas knows is a StoreError. With
        create=False a missing SQLite file is a StoreError instead (queries should not leave
        empty databases behind), and so is a database without nas's tables (an empty file,
        another program's database): queries never add tables. A file that is not a database
        at all is a StoreError either way."""
        self.url = url
        path = sqlite_path(url)
        if path is not None and not check_sqlite_file(path) and not create:
            raise StoreError(f"no database at {path}; run `nas search` first, or pass "
                             "--storage (or set NAS_STORAGE) to the database of your runs")
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        for attempt in range(OPEN_ATTEMPTS):
            try:
                if not create and not has_nas_tables(self.engine):
                    raise StoreError(f"{url} is not a nas database (it has no nas_runs table); "
                                     "pass --storage (or set NAS_STORAGE) to the database of "
                                     "your runs")
                ensure_current(self.engine, url)
                break
            except DatabaseError as exc:  # not a database, damaged, unreachable, read-only, ...
                # Two processes creating one new SQLite file at once: switching it to WAL or
                # upgrading a read lock can fail at once with "database is locked" instead of
                # waiting on the busy timeout. The other process finishes in well under a
                # second; try again, a few times.
                if "database is locked" in str(exc.orig) and attempt + 1 < OPEN_ATTEMPTS:
                    time.sleep(0.1 * 2 ** attempt)
                    continue
                raise StoreError(f"cannot open storage {url!r}: {exc.orig}") from None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def _reading(self, what: str):
        """A context for reads whose rows may be malformed: they become one StoreError naming
        `what` and this database (nas.store.untrusted.reading)."""
        return reading(what, self.url)

    # -- runs --------------------------------------------------------------------------------
    def create_run(self, *, name: str | None, base_name: str, **fields: Any) -> RunRecord:
        """A new run named `name`, or `base_name-N` with the next free N. Searches starting at
        once on one database may pick the same N: the one that loses takes the next. StoreError
        for a name that is not RUN_NAME (it names a folder of kept weights, too)."""
        for candidate in (name, f"{base_name}-1"):
            if candidate is not None and not RUN_NAME.fullmatch(candidate):
                raise StoreError(f"run name {candidate!r}: use letters, digits, '_', '-' and "
                                 "'.', starting with a letter, digit or '_' (at most 100)")
        for _ in range(50):
            try:
                run = self._insert_run(name, base_name, fields)
            except IntegrityError:  # another driver took the name between our read and write
                run = None
            if run is not None or name is not None:
                break
        if run is None:
            raise StoreError(f"a run named {name or base_name!r} already exists in {self.url}; "
                             "choose another --name (or `nas rm` the old one)")
        return run

    def _insert_run(self, name: str | None, base_name: str, fields: dict) -> RunRecord | None:
        """The new run's record; None if the given `name` is taken."""
        with self.transaction() as s:
            if name is None:
                like = RunRow.name.like(f"{base_name}-%")
                taken = set(s.scalars(select(RunRow.name).where(like)))
                n = 1
                while f"{base_name}-{n}" in taken:
                    n += 1
                name = f"{base_name}-{n}"
            elif s.scalar(select(RunRow.id).where(RunRow.name == name)) is not None:
                return None
            row = RunRow(name=name, status="running", **fields)
            s.add(row)
            s.flush()
            return _run_record(row)

    def finish_run(self, run_id: int, status: str, message: str | None = None,
                   elapsed_seconds: float | None = None) -> None:
        with self.transaction() as s:
            row = s.get(RunRow, run_id)
            row.status, row.message, row.finished_at = status, message, utcnow()
            if elapsed_seconds is not None:
                row.elapsed_seconds = elapsed_seconds
            self._fail_running(s, run_id, f"abandoned: the run ended ({status}) while it ran",
                               ABANDONED)

    def schema_lock(self):  # -> a context manager
        """The lock nas's migrations take on this database (a file lock beside a SQLite file,
        an advisory lock on PostgreSQL), for creating another library's tables in it (Optuna's)
        one process at a time."""
        from nas.store.migrate import _migration_lock

        return _migration_lock(self.engine)

    def unfinished_trials(self, run_id: int) -> list[int]:
        """The numbers of the run's FAIL trials that ended without a verdict on their
        candidate: lost with their driver, cancelled by an interrupt, or abandoned when the
        search stopped (failure class in nas.failures.UNFINISHED)."""
        with self.transaction() as s:
            return list(s.scalars(select(TrialRow.number).where(
                TrialRow.run_id == run_id, TrialRow.state == FAIL,
                TrialRow.failure.in_(UNFINISHED)).order_by(TrialRow.number)))

    def _fail_running(self, s: Session, run_id: int, reason: str, failure: str) -> list[int]:
        """Mark the run's RUNNING trials failed (class `failure`) and its PAUSED ones pruned;
        the numbers of the failed ones."""
        for trial in s.scalars(
                select(TrialRow).where(TrialRow.run_id == run_id, TrialRow.state == PAUSED)):
            trial.state, trial.finished_at = PRUNED, utcnow()
        rows = list(s.scalars(
            select(TrialRow).where(TrialRow.run_id == run_id, TrialRow.state == RUNNING)))
        for trial in rows:
            trial.state, trial.error, trial.finished_at = FAIL, reason, utcnow()
            trial.failure = failure
        return [t.number for t in rows]

    def reopen_run(self, run_id: int, *, driver_pid: int, host: str,
                   budget: tuple[str, str, float] | None = None) -> list[int]:
        """Take a stopped (or crashed) run up again: status running, new driver, optionally a
        new (text, unit, amount) budget. Trials left RUNNING by a dead driver become FAIL
        ("lost: ...", which `unfinished_trials` lists) and are charged for the attempt the
        driver lost: from the later of the trial's start and its last charge (an earlier
        retry or multi-fidelity segment, already charged) to the old driver's last sign of
        life (its heartbeat, or a later charge it recorded; ledger note `lost`). The charge is
        added to the trial's device-seconds, which stay the sum of its ledger rows. Returns
        the lost trials' numbers."""
        with self.transaction() as s:
            row = s.get(RunRow, run_id)
            last_charge = s.scalar(select(func.max(LedgerRow.at)).where(LedgerRow.run_id == run_id))
            last_seen = max((t for t in (row.heartbeat_at, last_charge) if t), default=None)
            lost = self._fail_running(s, run_id, "lost: the search driver stopped mid-trial", LOST)
            for number in lost:
                trial = self._trial_row(s, run_id, number)
                charged_until = s.scalar(select(func.max(LedgerRow.at)).where(
                    LedgerRow.run_id == run_id, LedgerRow.trial_number == number))
                began = max(trial.started_at, charged_until or trial.started_at)
                seconds = max(0.0, ((last_seen or began) - began).total_seconds())
                trial.device_seconds = (trial.device_seconds or 0.0) + seconds
                self._charge(s, run_id, number, seconds, seconds, "lost")
            row.status, row.message, row.finished_at = "running", None, None
            row.driver_pid, row.host = driver_pid, host
            if budget is not None:
                row.budget, row.budget_unit, row.budget_amount = budget
            return lost

    def beat(self, run_id: int) -> None:
        """The run's driver is alive now: stamp nas_runs.heartbeat_at."""
        with self.transaction() as s:
            s.get(RunRow, run_id).heartbeat_at = utcnow()

    def record_elapsed(self, run_id: int, seconds: float) -> None:
        """Wall-clock seconds the run has been searched, over all its sessions."""
        with self.transaction() as s:
            s.get(RunRow, run_id).elapsed_seconds = seconds

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first; StoreError if one of them is malformed."""
        with self.transaction() as s, self._reading("a run"):
            rows = s.scalars(select(RunRow).order_by(RunRow.id))
            return [self._summarize(s, row) for row in rows]

    def run(self, ref: str | int) -> RunRecord:
        """A run by name or id; StoreError listing the known names if there is none, or
        naming what is malformed in it."""
        with self.transaction() as s, self._reading(f"run {shown(ref)}"):
            return self._summarize(s, self._run_row(s, ref))

    def _run_row(self, s: Session, ref: str | int) -> RunRow:
        """The run named `ref`, else the run with id `ref` (ASCII digits within 64 bits only:
        '²' passes str.isdigit but is no id); StoreError listing recent names otherwise."""
        row = s.scalar(select(RunRow).where(RunRow.name == str(ref)))
        run_id = as_row_id(ref)
        if row is None and run_id is not None:
            row = s.get(RunRow, run_id)
        if row is None:
            names = list(s.scalars(select(func.substr(RunRow.name, 1, 61))  # a name may be huge
                                   .order_by(RunRow.id.desc()).limit(10)))
            known = (f"; recent runs: {', '.join(one_line(str(n), 60) for n in names)}" if names
                     else "; it has no runs yet")
            raise StoreError(f"no run {shown(ref)} in {self.url}{known}")
        return row

    def _checked_run_row(self, s: Session, ref: str | int) -> RunRow:
        """`_run_row`, a row that cannot even be loaded being a StoreError."""
        with self._reading(f"run {shown(ref)}"):
            return self._run_row(s, ref)

    def delete_run(self, ref: str | int) -> RunRecord:
        """Delete a run with its trials, their curves, kept weights and budget ledger (rows in
        one transaction, then the files); returns the run as it was. Rows are deleted
        explicitly (children first), so this holds whether or not the backend enforces ON
        DELETE CASCADE. The Optuna study is not touched."""
        from sqlalchemy import delete

        with self.transaction() as s:
            row = self._run_row(s, ref)
            with self._reading(f"run {row.name!r}"):
                record = self._summarize(s, row)
                files = self._artifact_records(s, row)
            trial_ids = select(TrialRow.id).where(TrialRow.run_id == row.id)
            s.execute(delete(ArtifactRow).where(ArtifactRow.trial_id.in_(trial_ids)))
            s.execute(delete(MetricRow).where(MetricRow.trial_id.in_(trial_ids)))
            s.execute(delete(TrialRow).where(TrialRow.run_id == row.id))
            s.execute(delete(LedgerRow).where(LedgerRow.run_id == row.id))
            s.execute(delete(RunRow).where(RunRow.id == row.id))

        for artifact in files:
            remove_quietly(artifact.file)
        try:
            sweep_orphans(self.artifacts_root, self.run_folder(record.name), kept=set())
        except StoreError:  # a name that is no folder: the run has no folder to sweep
            pass
        return record

    def _summarize(self, s: Session, row: RunRow) -> RunRecord:
        complete = s.scalar(select(func.count()).where(
            TrialRow.run_id == row.id, TrialRow.state == COMPLETE))
        total = s.scalar(select(func.count()).where(TrialRow.run_id == row.id))
        used = s.scalar(select(func.coalesce(func.sum(LedgerRow.device_seconds), 0.0)).where(
            LedgerRow.run_id == row.id))
        return _run_record(row, complete or 0, total or 0, float(used or 0.0))

    def device_seconds(self, run_id: int, state: str) -> list[float]:
        """The device-seconds of the run's trials in `state`, in trial order (one column read:
        the search loop asks on its hot path)."""
        with self.transaction() as s:
            return [float(v or 0.0) for v in s.scalars(
                select(TrialRow.device_seconds).where(TrialRow.run_id == run_id,
                                                      TrialRow.state == state)
                .order_by(TrialRow.number))]

    def state_counts(self, run_id: int) -> dict[str, int]:
        """How many of the run's trials are in each state (states with none are absent)."""
        with self.transaction() as s:
            return dict(s.execute(select(TrialRow.state, func.count())
                                  .where(TrialRow.run_id == run_id).group_by(TrialRow.state)).all())

    # -- trials (writes) ---------------------------------------------------------------------
    def start_trial(self, run_id: int, number: int, spec: ArchSpec, worker: str,
                    decision: Decision | None = None) -> None:
        """A trial about to train: RUNNING, with what the strategy decided for it."""
        with self.transaction() as s:
            s.add(self._new_trial(run_id, number, spec, decision, state=RUNNING,
                                  worker=worker))

    def _new_trial(self, run_id: int, number: int, spec: ArchSpec,
                   decision: Decision | None = None, **fields: Any) -> TrialRow:
        """A trial row; without `decision` (a trial recorded from elsewhere, e.g. Ray Tune)
        its decision columns stay NULL: the strategy cannot be rebuilt from it."""
        known = {} if decision is None else {
            "decisions": dict(decision.values), "strategy_state": dict(decision.state),
            "retrain_of": decision.retrain_of}
        return TrialRow(
            run_id=run_id, number=number, spec_json=spec.to_json(), arch_hash=spec.arch_hash,
            config_hash=spec.config_hash, short_form=spec.short_form(), d_model=spec.d_model,
            n_layers=spec.n_layers, **known, **fields,
        )

    def decisions(self, run_id: int) -> list[tuple[int, Decision | None]]:
        """(number, what the strategy decided) of every trial of the run in number order;
        None for a trial stored before decisions were (nas < 0.6: see `record_decisions`).
        StoreError naming the first malformed one."""
        with self.transaction() as s:
            run = s.get(RunRow, run_id)
            rows = s.execute(select(TrialRow.number, TrialRow.decisions, TrialRow.strategy_state,
                                    TrialRow.retrain_of).where(TrialRow.run_id == run_id)
                             .order_by(TrialRow.number))
            with self._reading(f"a trial of run {shown(run.name)}"):
                return [(integer(number, "number"), _decision(values, state, retrain_of))
                        for number, values, state, retrain_of in rows]

    def record_decisions(self, run_id: int, decisions: Mapping[int, Decision]) -> None:
        """Fill in what the strategy decided for trials stored without it (from the run's
        Optuna study, for runs searched before nas's tables held it); one transaction."""
        with self.transaction() as s:
            for number, decision in decisions.items():
                row = s.scalar(select(TrialRow).where(TrialRow.run_id == run_id,
                                                      TrialRow.number == number))
                if row is not None and row.decisions is None:
                    row.decisions, row.strategy_state = (dict(decision.values),
                                                         dict(decision.state))
                    row.retrain_of = decision.retrain_of

    def complete_trial(
        self, run_id: int, number: int, *, values: dict[str, float], metrics: dict[str, float],
        curve: Sequence[tuple[int, str, float]], device: str, device_seconds: float,
        wall_seconds: float, artifact: ArtifactFile | None = None,
        costs: dict[str, float] | None = None, elapsed_seconds: float | None = None,
    ) -> None:
        """Record a finished trial (with the file of its weights, if it kept them), charge the
        ledger and refresh the front; with `costs` (params, seq_len, flops_per_token,
        state_bytes) its architecture joins nas_architectures if new, with `elapsed_seconds`
        the run's searched time is updated: one transaction."""
        with self.transaction() as s:
            if elapsed_seconds is not None:
                s.get(RunRow, run_id).elapsed_seconds = elapsed_seconds
            row = self._trial_row(s, run_id, number)
            if costs is not None:
                self._add_architecture(s, ArchSpec.from_json(row.spec_json), **costs)
            row.state, row.values, row.metrics, row.device = COMPLETE, values, metrics, device
            row.params = row_params(metrics)
            row.finished_at = utcnow()
            row.device_seconds = (row.device_seconds or 0.0) + device_seconds  # all segments
            row.curve = [MetricRow(step=st, name=n, value=float(v)) for st, n, v in curve]
            if artifact is not None:
                row.artifacts.append(ArtifactRow(kind=artifact.kind, path=artifact.path,
                                                 bytes=artifact.bytes, sha256=artifact.sha256))
            self._charge(s, run_id, number, device_seconds, wall_seconds, "complete")
            self._mirror_to_duplicates(s, run_id, number, values, metrics)
            s.flush()
            self._join_front(s, run_id, row)

    def _mirror_to_duplicates(self, s: Session, run_id: int, number: int,
                              values: dict[str, float], metrics: dict[str, float]) -> None:
        """The DUPLICATE trials that repeat trial `number` show its values as they change
        (it may have been running or paused when they were sampled, or be re-measured)."""
        for copy in s.scalars(select(TrialRow).where(
                TrialRow.run_id == run_id, TrialRow.state == DUPLICATE,
                TrialRow.duplicate_of == number)):
            copy.values, copy.metrics, copy.params = values, metrics, row_params(metrics)

    def record_rung(
        self, run_id: int, number: int, *, state: str, values: dict[str, float],
        metrics: dict[str, float], curve: Sequence[tuple[int, str, float]], device: str,
        device_seconds: float, wall_seconds: float,
    ) -> None:
        """A multi-fidelity segment ended at a rung: store the trial's values there and its
        whole curve so far, set it RUNNING (promoted on), PAUSED or PRUNED, charge the segment.
        Such a trial is never on the front until it completes its last rung."""
        if state not in (RUNNING, PAUSED, PRUNED):
            raise ValueError(f"a trial at a rung is RUNNING, PAUSED or PRUNED, not {state}")
        with self.transaction() as s:
            row = self._trial_row(s, run_id, number)
            row.state, row.values, row.metrics, row.device = state, values, metrics, device
            row.params = row_params(metrics)
            row.device_seconds = (row.device_seconds or 0.0) + device_seconds
            row.curve = [MetricRow(step=st, name=n, value=float(v)) for st, n, v in curve]
            if state == PRUNED:
                row.finished_at = utcnow()
            self._charge(s, run_id, number, device_seconds, wall_seconds, "rung")
            self._mirror_to_duplicates(s, run_id, number, values, metrics)

    def set_trial_state(self, run_id: int, number: int, state: str) -> None:
        """Move a paused trial on (RUNNING, when promoted) or retire it (PRUNED)."""
        with self.transaction() as s:
            row = self._trial_row(s, run_id, number)
            row.state = state
            if state == PRUNED:
                row.finished_at = utcnow()

    def fail_trial(self, run_id: int, number: int, *, error: str, device_seconds: float,
                   wall_seconds: float, device: str | None = None, note: str = "fail",
                   failure: str = ERROR) -> None:
        """A trial that failed (`note` tells the ledger how, e.g. "cancelled"): FAIL with the
        error and its failure class (nas.failures), its seconds charged."""
        with self.transaction() as s:
            row = self._trial_row(s, run_id, number)
            row.state, row.error, row.device, row.failure = FAIL, error, device, failure
            row.finished_at = utcnow()
            row.device_seconds = (row.device_seconds or 0.0) + device_seconds
            self._charge(s, run_id, number, device_seconds, wall_seconds, note)

    def retry_trial(self, run_id: int, number: int, *, device_seconds: float,
                    wall_seconds: float) -> int:
        """The worker of a trial was lost and the trial starts again: it stays (or goes back
        to) RUNNING with `retries` one higher, the lost attempt's seconds are charged (note
        "lost"). Returns the new retry count."""
        with self.transaction() as s:
            row = self._trial_row(s, run_id, number)
            row.state, row.finished_at = RUNNING, None
            row.retries = (row.retries or 0) + 1
            row.device_seconds = (row.device_seconds or 0.0) + device_seconds
            self._charge(s, run_id, number, device_seconds, wall_seconds, "lost")
            return row.retries

    def trial_infeasible(self, run_id: int, number: int, *, reason: str,
                         device_seconds: float, wall_seconds: float,
                         failure: str | None = OOM) -> None:
        """A trial that started but cannot run on its device (out of memory, failure class
        oom) or failed a constraint measured on its device (failure None): INFEASIBLE with the
        reason. Unlike a candidate that fails an analytic constraint, it did use its device,
        so its seconds are charged (note "infeasible")."""
        with self.transaction() as s:
            row = self._trial_row(s, run_id, number)
            row.state, row.error, row.finished_at = INFEASIBLE, reason, utcnow()
            row.failure = failure
            row.device_seconds = (row.device_seconds or 0.0) + device_seconds
            self._charge(s, run_id, number, device_seconds, wall_seconds, "infeasible")

    def charge_trial(self, run_id: int, number: int, *, device_seconds: float,
                     wall_seconds: float, note: str) -> None:
        """Charge a running trial for work done before its training (ledger `note`, e.g.
        "screen": measuring what its constraints need); added to its device-seconds."""
        with self.transaction() as s:
            row = self._trial_row(s, run_id, number)
            row.device_seconds = (row.device_seconds or 0.0) + device_seconds
            self._charge(s, run_id, number, device_seconds, wall_seconds, note)

    def record_remeasure(self, run_id: int, updates: dict[int, tuple[dict[str, float],
                                                                      dict[str, float]]],
                         *, charged: int, device_seconds: float, wall_seconds: float) -> None:
        """The end-of-search re-measurement of one architecture: each trial numbered in
        `updates` gets its (values, metrics), and so do the DUPLICATE trials that repeat it;
        trial `charged` is charged the seconds (ledger note "remeasure"); the front is
        refreshed. One transaction."""
        with self.transaction() as s:
            for number, (values, metrics) in updates.items():
                row = self._trial_row(s, run_id, number)
                row.values, row.metrics = values, metrics
                self._mirror_to_duplicates(s, run_id, number, values, metrics)
            row = self._trial_row(s, run_id, charged)
            row.device_seconds = (row.device_seconds or 0.0) + device_seconds
            self._charge(s, run_id, charged, device_seconds, wall_seconds, "remeasure")
            s.flush()
            self._refresh_front(s, run_id)

    def record_replicates(self, run_id: int, number: int, *, values: dict[str, float],
                          metrics: dict[str, float], charges: Sequence[float]) -> None:
        """The end-of-search replicates of trial `number` (nas.orchestrator.replicates): its
        new (values, metrics), mirrored to the DUPLICATE trials that repeat it; one ledger
        row per replicate training (note "replicate", wall = device seconds), added to the
        trial's device seconds; the front refreshed. One transaction."""
        with self.transaction() as s:
            row = self._trial_row(s, run_id, number)
            row.values, row.metrics = values, metrics
            self._mirror_to_duplicates(s, run_id, number, values, metrics)
            for seconds in charges:
                row.device_seconds = (row.device_seconds or 0.0) + seconds
                self._charge(s, run_id, number, seconds, seconds, "replicate")
            s.flush()
            self._refresh_front(s, run_id)

    def add_duplicate(self, run_id: int, number: int, spec: ArchSpec, of: TrialRecord,
                      decision: Decision | None = None) -> None:
        """A sampled config equal to trial `of`: answered from the store, charged nothing."""
        with self.transaction() as s:
            s.add(self._new_trial(
                run_id, number, spec, decision, state=DUPLICATE, duplicate_of=of.number,
                values=of.values, metrics=of.metrics, params=of.params, finished_at=utcnow(),
            ))

    def add_infeasible(self, run_id: int, number: int, spec: ArchSpec, reason: str,
                       params: int | None = None, decision: Decision | None = None) -> None:
        """A sampled candidate that fails a constraint of the space (`reason` says which, with
        the values): recorded as INFEASIBLE, never trained, charged nothing."""
        with self.transaction() as s:
            s.add(self._new_trial(run_id, number, spec, decision, state=INFEASIBLE, error=reason,
                                  params=params, finished_at=utcnow()))

    def _trial_row(self, s: Session, run_id: int, number: int) -> TrialRow:
        row = s.scalar(select(TrialRow).where(TrialRow.run_id == run_id, TrialRow.number == number))
        if row is None:
            raise StoreError(f"no trial {number} in run id {run_id}")
        return row

    def _charge(self, s: Session, run_id: int, number: int, device_seconds: float,
                wall_seconds: float, note: str) -> None:
        s.add(LedgerRow(run_id=run_id, trial_number=number, device_seconds=device_seconds,
                        wall_seconds=wall_seconds, note=note))

    def _join_front(self, s: Session, run_id: int, row: TrialRow) -> None:
        """Update the front for `row`, just completed, against the front as flagged: it
        joins unless a front member dominates it, and the members it dominates leave (a new
        point never brings another back). O(front) where `_refresh_front` is O(trials²)."""
        run = s.get(RunRow, run_id)
        with self._reading(f"a trial of run {shown(run.name)}"):
            objectives = objectives_list(run.objectives)
            names = [o["name"] for o in objectives]
            directions = [o["direction"] for o in objectives]
            front = s.execute(select(TrialRow.id, TrialRow.number, TrialRow.values).where(
                TrialRow.run_id == run_id, TrialRow.state == COMPLETE,
                TrialRow.pareto.is_(True), TrialRow.id != row.id)).all()
            points = {trial_id: [float(v[n]) for n in names] for trial_id, v in (
                (trial_id, objective_values(numbers_by_name(values, "values"), names,
                                            integer(number, "number")))
                for trial_id, number, values in front)}
        point = [float(row.values[n]) for n in names]
        row.pareto = not any(dominates(other, point, directions) for other in points.values())
        beaten = [trial_id for trial_id, other in points.items()
                  if row.pareto and dominates(point, other, directions)]
        if beaten:
            s.execute(update(TrialRow).where(TrialRow.id.in_(beaten)).values(pareto=False))

    def _refresh_front(self, s: Session, run_id: int) -> None:
        """Recompute the run's Pareto flags over its COMPLETE trials. Reads only the columns
        it needs and writes only the flags that change: it runs on every completion."""
        run = s.get(RunRow, run_id)
        with self._reading(f"a trial of run {shown(run.name)}"):
            objectives = objectives_list(run.objectives)
            names = [o["name"] for o in objectives]
            directions = [o["direction"] for o in objectives]
            rows = s.execute(select(TrialRow.id, TrialRow.number, TrialRow.values,
                                    TrialRow.pareto).where(TrialRow.run_id == run_id,
                                                           TrialRow.state == COMPLETE)).all()
            checked = [objective_values(numbers_by_name(values, "values"), names,
                                        integer(number, "number"))
                       for _, number, values, _ in rows]
            points = [[float(values[n]) for n in names] for values in checked]
        mask = pareto_mask(points, directions)
        for flag in (True, False):
            changed = [row.id for row, on_front in zip(rows, mask, strict=True)
                       if on_front == flag and bool(row.pareto) != flag]
            if changed:
                s.execute(update(TrialRow).where(TrialRow.id.in_(changed)).values(pareto=flag))

    # -- trials (reads) ----------------------------------------------------------------------
    def trials(self, ref: str | int, states: Sequence[str] | None = None) -> list[TrialRecord]:
        """The run's trials (those in `states`, if given) in number order; StoreError naming
        the first malformed one."""
        with self.transaction() as s:
            run = self._checked_run_row(s, ref)
            query = select(TrialRow).where(TrialRow.run_id == run.id).order_by(TrialRow.number)
            if states:
                query = query.where(TrialRow.state.in_(list(states)))
            with self._reading(f"a trial of run {shown(run.name)}"):
                names = _objective_names(run)
                return [_trial_record(row, names) for row in s.scalars(query)]

    def pareto(self, ref: str | int) -> list[TrialRecord]:
        """The run's Pareto front over its completed trials, in trial order."""
        with self.transaction() as s:
            run = self._checked_run_row(s, ref)
            query = select(TrialRow).where(TrialRow.run_id == run.id, TrialRow.state == COMPLETE,
                                           TrialRow.pareto.is_(True)).order_by(TrialRow.number)
            with self._reading(f"a trial of run {shown(run.name)}"):
                names = _objective_names(run)
                return [_trial_record(row, names) for row in s.scalars(query)]

    def trial(self, ref: str | int, number: int) -> TrialRecord:
        """Trial `number` of a run; StoreError if there is none or it is malformed."""
        with self.transaction() as s:
            run = self._checked_run_row(s, ref)
            with self._reading(f"trial {number} of run {shown(run.name)}"):
                return _trial_record(self._trial_by_ref(s, ref, number), _objective_names(run))

    def curve(self, ref: str | int, number: int) -> list[tuple[int, str, float]]:
        """(step, metric name, value) points of one trial, in step order."""
        with self.transaction() as s:
            name = shown(self._checked_run_row(s, ref).name)
            with self._reading(f"the curve of trial {number} of run {name}"):
                return [curve_point(m.step, m.name, m.value)
                        for m in self._trial_by_ref(s, ref, number).curve]

    def _trial_by_ref(self, s: Session, ref: str | int, number: int) -> TrialRow:
        """Trial `number` of the run `ref`; StoreError "no trial N in run R" when there is
        none, a number beyond 64 bits included (no backend could hold it)."""
        run = self._run_row(s, ref)
        row = None
        if 0 <= number <= MAX_ROW_ID:
            row = s.scalar(select(TrialRow).where(TrialRow.run_id == run.id,
                                                  TrialRow.number == number))
        if row is None:
            raise StoreError(f"no trial {number} in run {shown(run.name)}; `nas trials RUN` "
                             "lists the trials of a run")
        return row

    def find_complete(self, run_id: int, config_hash: str) -> TrialRecord | None:
        """A completed trial of this run with the same architecture and training recipe."""
        return self.find_trained(run_id, config_hash, states=(COMPLETE,))

    def find_trained(self, run_id: int, config_hash: str,
                     states: Sequence[str] = (COMPLETE, RUNNING, PAUSED, PRUNED)
                     ) -> TrialRecord | None:
        """A trial of this run with the same architecture and training recipe that was trained
        (or is training) in one of `states`; a completed one first."""
        with self.transaction() as s:
            rows = list(s.scalars(select(TrialRow).where(
                TrialRow.run_id == run_id, TrialRow.config_hash == config_hash,
                TrialRow.state.in_(states)).order_by(TrialRow.number)))
            rows.sort(key=lambda r: r.state != COMPLETE)
            if not rows:
                return None
            run = s.get(RunRow, run_id)
            with self._reading(f"trial {rows[0].number} of run {shown(run.name)}"):
                return _trial_record(rows[0], _objective_names(run))

    def ledger(self, run_id: int) -> tuple[float, float, int]:
        """(device-seconds, trial wall-seconds, charged trials) spent by a run so far; a trial
        charged for several multi-fidelity segments counts once."""
        with self.transaction() as s:
            dev, wall, count = s.execute(select(
                func.coalesce(func.sum(LedgerRow.device_seconds), 0.0),
                func.coalesce(func.sum(LedgerRow.wall_seconds), 0.0),
                func.count(func.distinct(LedgerRow.trial_number)),
            ).where(LedgerRow.run_id == run_id)).one()
            return float(dev), float(wall), int(count)

    def ledger_entries(self, ref: str | int) -> list[LedgerEntry]:
        """Every charge of the run, oldest first: the order in which its budget was spent."""
        with self.transaction() as s, self._reading(f"the ledger of run {shown(ref)}"):
            run_id = self._checked_run_row(s, ref).id
            rows = s.scalars(select(LedgerRow).where(LedgerRow.run_id == run_id)
                             .order_by(LedgerRow.id))
            return [LedgerEntry(integer(r.trial_number, "trial_number", nullable=True),
                                text(r.note, "note"), number(r.device_seconds, "device_seconds"),
                                number(r.wall_seconds, "wall_seconds"), r.at) for r in rows]

    # -- architectures -----------------------------------------------------------------------
    def record_architecture(self, spec: ArchSpec, *, params: int, seq_len: int,
                            flops_per_token: float, state_bytes: int) -> None:
        """Add an architecture the first time any run trains it (later calls do nothing)."""
        with self.transaction() as s:
            self._add_architecture(s, spec, params=params, seq_len=seq_len,
                                   flops_per_token=flops_per_token, state_bytes=state_bytes)

    def _add_architecture(self, s: Session, spec: ArchSpec, *, params: int, seq_len: int,
                          flops_per_token: float, state_bytes: int) -> None:
        if s.scalar(select(ArchitectureRow.id).where(
                ArchitectureRow.arch_hash == spec.arch_hash)) is None:
            s.add(ArchitectureRow(
                arch_hash=spec.arch_hash, spec_json=spec.to_json(),
                short_form=spec.short_form()[:255], params=int(params), seq_len=int(seq_len),
                flops_per_token=float(flops_per_token), state_bytes=int(state_bytes)))

    def architecture(self, arch_hash: str) -> dict[str, Any] | None:
        """The stored costs of one architecture, or None."""
        with self.transaction() as s:
            row = s.scalar(select(ArchitectureRow).where(ArchitectureRow.arch_hash == arch_hash))
            if row is None:
                return None
            return {"arch_hash": row.arch_hash, "short_form": row.short_form,
                    "params": row.params, "seq_len": row.seq_len,
                    "flops_per_token": row.flops_per_token, "state_bytes": row.state_bytes,
                    "spec_json": row.spec_json}

    # -- the latency cache -------------------------------------------------------------------
    def cached_latency(self, arch_hash: str) -> list[dict[str, Any]]:
        """Every stored latency measurement of an architecture, on any device; `contended`
        says whether other work competed with it (False for rows stored before that was
        checked)."""
        with self.transaction() as s:
            rows = s.scalars(select(LatencyRow).where(LatencyRow.arch_hash == arch_hash))
            return [{"fingerprint_hash": r.fingerprint_hash,
                     "fingerprint": {k: v for k, v in _mapping(r.fingerprint).items()
                                     if k != _CONTENDED},
                     "phase": r.phase, "batch": r.batch, "seq_len": r.seq_len,
                     "median_ms": r.median_ms, "spread": r.spread, "repeats": r.repeats,
                     "contended": bool(_mapping(r.fingerprint).get(_CONTENDED))}
                    for r in rows]

    def record_latency(self, arch_hash: str, fingerprint: dict[str, Any],
                       measurements: Sequence[dict[str, Any]]) -> None:
        """Add fresh measurements (dicts as `cached_latency` returns, fingerprint_hash included;
        `contended` optional) to the cache; one already stored for the same key is kept unless
        the new one is steadier, which replaces it: an uncontended measurement beats a contended
        one, and between two alike the smaller spread wins. Whether a row was contended is kept
        in its fingerprint JSON (key "contended", not part of the hash). Two drivers recording
        the same key at once: the one whose insert loses reads the winner's row and compares."""
        if not measurements:
            return
        try:
            self._record_latency(arch_hash, fingerprint, measurements)
        except IntegrityError:  # another process inserted one of these keys after our read
            self._record_latency(arch_hash, fingerprint, measurements)

    def _record_latency(self, arch_hash: str, fingerprint: dict[str, Any],
                        measurements: Sequence[dict[str, Any]]) -> None:
        with self.transaction() as s:
            for m in measurements:
                key = (LatencyRow.arch_hash == arch_hash,
                       LatencyRow.fingerprint_hash == m["fingerprint_hash"],
                       LatencyRow.phase == m["phase"], LatencyRow.batch == m["batch"],
                       LatencyRow.seq_len == m["seq_len"])
                stored = s.scalar(select(LatencyRow).where(*key))
                contended = bool(m.get("contended"))
                noted = {**fingerprint, _CONTENDED: True} if contended else dict(fingerprint)
                if stored is not None and (contended, m["spread"]) < (
                        bool(_mapping(stored.fingerprint).get(_CONTENDED)), stored.spread):
                    stored.median_ms, stored.spread = m["median_ms"], m["spread"]
                    stored.repeats, stored.measured_at = m["repeats"], utcnow()
                    stored.fingerprint = noted
                elif stored is None:
                    s.add(LatencyRow(
                        arch_hash=arch_hash, fingerprint_hash=m["fingerprint_hash"],
                        fingerprint=noted, phase=m["phase"], batch=m["batch"],
                        seq_len=m["seq_len"], median_ms=m["median_ms"], spread=m["spread"],
                        repeats=m["repeats"]))

    # -- artifacts (kept weights) ------------------------------------------------------------
    @property
    def artifacts_root(self) -> Path:
        """The folder of this database's artifacts (see nas.store.artifacts)."""
        return artifacts_root(self.url)

    def run_folder(self, run_name: str) -> str:
        """The folder of a run's files, relative to artifacts_root (see nas.store.artifacts)."""
        return run_folder(self.url, run_name)

    def _artifact_query(self, run_id: int):
        return (select(ArtifactRow, TrialRow.number).join(TrialRow)
                .where(TrialRow.run_id == run_id).order_by(TrialRow.number, ArtifactRow.kind))

    def _artifact_record(self, row: ArtifactRow, number: int,
                         run_name: str) -> ArtifactRecord | None:
        """The record of an artifact row, or None — with one warning line naming the row and
        its path — when the path does not stay inside the run's folder: such a file is never
        read, copied or deleted (the database may come from someone else)."""
        try:
            file = locate(self.artifacts_root, self.run_folder(run_name), row.path)
        except (OutsideFolder, StoreError) as exc:
            _log.warning("warning: artifact row %s (run %s, trial %s) ignored, its file left "
                         "alone: %s", row.id, shown(run_name), number, exc)
            return None
        return ArtifactRecord(number=number, kind=row.kind, path=row.path, file=file,
                              bytes=row.bytes, sha256=row.sha256, created_at=row.created_at)

    def _artifact_records(self, s: Session, run: RunRow) -> list[ArtifactRecord]:
        records = (self._artifact_record(a, n, run.name)
                   for a, n in s.execute(self._artifact_query(run.id)))
        return [r for r in records if r is not None]

    def artifacts(self, ref: str | int) -> list[ArtifactRecord]:
        """Every kept file of a run, in trial order (rows whose path leaves the run's folder
        are left out, with a warning)."""
        with self.transaction() as s, self._reading("the kept files of a run"):
            return self._artifact_records(s, self._run_row(s, ref))

    def artifact(self, ref: str | int, number: int, kind: str = "weights") -> ArtifactRecord | None:
        """Trial `number`'s kept file of `kind`, or None if it kept none. StoreError when its
        row names a path outside the run's folder: that file is never read (nas.store.artifacts
        .confine), and saying so beats pretending the trial kept nothing."""
        with self.transaction() as s, self._reading(f"the kept files of run {shown(ref)}"):
            run = self._run_row(s, ref)
            found = s.execute(self._artifact_query(run.id).where(
                TrialRow.number == number, ArtifactRow.kind == kind)).first()
            if found is None:
                return None
            row, _ = found
            try:
                file = locate(self.artifacts_root, self.run_folder(run.name), row.path)
            except OtherDatabase as exc:
                raise StoreError(f"the {kind} of trial {shown(run.name)}/{number} cannot be "
                                 f"read: {exc}") from None
            except (OutsideFolder, StoreError) as exc:
                raise StoreError(f"the {kind} of trial {shown(run.name)}/{number} cannot be "
                                 f"read: {exc} — it is left alone; the database was edited, "
                                 "use the original one") from None
            return ArtifactRecord(number=number, kind=row.kind, path=row.path, file=file,
                                  bytes=row.bytes, sha256=row.sha256, created_at=row.created_at)

    def prune_artifacts(self, run_id: int, keep: str, sweep: bool = False) -> list[Path]:
        """Apply a keep policy (front | all | none) to the run's kept files: rows of files no
        longer wanted are deleted (one transaction), then the files. With sweep=True, files in
        the run's folder that no row names are deleted too — only when no worker of the run is
        writing (at the end of a search). Returns the deleted files."""
        from sqlalchemy import delete

        if keep not in KEEP_POLICIES:
            raise StoreError(f"unknown keep_weights {keep!r}; use one of "
                             f"{', '.join(KEEP_POLICIES)}")
        with self.transaction() as s:
            run_name = s.get(RunRow, run_id).name
            dropped, kept = [], set()
            for row, number in s.execute(self._artifact_query(run_id)):
                trial = s.get(TrialRow, row.trial_id)
                wanted = keep == "all" or (keep == "front" and trial.pareto)
                if wanted:  # by its path, and where a copied database finds it (locate)
                    kept.add(row.path)
                    try:
                        kept.add(rebased(self.run_folder(run_name), row.path) or row.path)
                    except StoreError:  # a name that is no folder: nothing to sweep
                        pass
                else:
                    dropped.append(self._artifact_record(row, number, run_name))
                    s.execute(delete(ArtifactRow).where(ArtifactRow.id == row.id))
        removed = []
        for artifact in dropped:
            if artifact is not None:  # None: a path outside the run's folder, left alone
                remove_quietly(artifact.file)
                removed.append(artifact.file)
        try:
            folder = self.run_folder(run_name)
        except StoreError:  # a name that is no folder: the run has no files to tidy
            return removed
        if sweep:
            removed += sweep_orphans(self.artifacts_root, folder, kept)
        remove_if_empty(self.artifacts_root, folder)
        return removed
