"""`ReplayExecutor`: trials answered from a tabular benchmark instead of trained.

`search.evaluate: {table: PATH}` makes a search replay a table built by nas (nas.tabular): the
real strategy, loop, store, budget and CLI run as in any search, but each trial's request is
answered at once from the table's entry for its configuration — one of the recorded trainings,
chosen by the request's seed (`Entry.training_for`), with that training's metrics, objective
values and **recorded device-seconds**, which the budget is charged. A search of hundreds of
trials under a device-seconds budget (`--budget 2cpuh`) therefore runs in seconds and spends
the budget the real trainings spent; a wall-clock budget would measure the replay itself, so a
replay refuses one.

Every trial is marked: its worker is `replay <table name>`, its device `replay`, and the run's
recorded versions carry `replay: <table name> <file sha256 prefix>`, so a replayed run is never
mistaken for a trained one.

A configuration the table does not hold fails its trial (failure class `error`, "not in the
table"); the space should be the table's own (`Table.space`). Requests for latency alone
(re-measurement) are answered from the table's recorded latency metrics where it has them.
Multi-fidelity (a request that stops early) cannot be replayed from final values and is
refused before the search starts.

Implements the Executor contract of `nas.orchestrator.executor` (submit -> Future of
WorkerOutput, cancel, heal, shutdown; `workers`, `threads`). Futures are resolved before
`submit` returns; `workers` is how many the loop keeps in flight (it changes nothing else).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from pathlib import Path

from nas.errors import NasError
from nas.evaluate.trial import TrialRequest, TrialResult
from nas.failures import ERROR
from nas.orchestrator.executor_base import TrialFailed, WorkerOutput
from nas.searchspace import SearchSpace
from nas.spec import ArchSpec
from nas.tabular import Table, read

DEVICE = "replay"
STEADY = "train_seconds_steady"  # the cost `nas table measure` adds (charge: steady)
OPENED_TABLES = 4  # tables kept in memory once read, by path, size and modification time
_OPENED: dict[tuple[str, int, int], tuple[Table, str]] = {}


def table_path(space_path: str, table: str) -> Path:
    """`table` as written in the space file: relative to the space file's folder."""
    path = Path(table).expanduser()
    return path if path.is_absolute() else Path(space_path).resolve().parent / path


def check_replay(space: SearchSpace, budget_unit: str, ray_address: str | None) -> str | None:
    """For a space with `search.evaluate.table`: NasError (one line, with the fix) unless it
    can be replayed — a budget in trials or device-hours (a wall clock would time the replay),
    no multi-fidelity, no Ray, no separate measurement worker, every objective in the table.
    Returns what the run records it replayed ("NAME SHA256-PREFIX"); None for a space that
    trains."""
    evaluate = space.config.search.evaluate
    if evaluate is None:
        return None
    where = f"{space.path}: search.evaluate.table"
    if budget_unit == "wall_seconds":
        raise NasError(f"{where}: a replay answers trials at once, so a wall-clock budget would "
                       "measure the replay, not the trainings; fix: give the budget in trials "
                       "or device-hours (--budget 200trials, --budget 2cpuh)")
    for present, what in ((space.config.search.fidelity, "search.fidelity"),
                          (space.config.search.inherit, "search.inherit"),
                          (ray_address or space.config.search.ray_address, "Ray"),
                          (space.config.search.measure, "search.measure")):
        if present:
            raise NasError(f"{where}: cannot be combined with {what} (a table holds each "
                           f"training's final values, measured once); fix: remove {what}")
    executor = ReplayExecutor.open(table_path(space.path, evaluate.table))
    executor.check_objectives([o.name for o in space.objectives], where)
    missing = [e.spec.short_form() for e in executor.table.entries.values()
               if STEADY not in e.costs]
    if evaluate.charge == "steady" and missing:
        raise NasError(f"{space.path}: search.evaluate.charge: steady needs the table's "
                       f"{STEADY}, which {len(missing):,} entries lack (e.g. {missing[0]}); fix: "
                       "time the table with `nas table measure --phase train_step`, or charge: "
                       "recorded")
    return executor.fingerprint


class ReplayExecutor:
    """Answers trial requests from `table`; see the module docstring."""

    def __init__(self, table: Table, workers: int = 1, charge: str = "recorded") -> None:
        self.table = table
        self.charge = charge  # recorded | steady (see EvaluateConfig)
        self.workers = max(1, workers)
        self.threads = 1
        self.name = f"replay {table.name}"
        self.fingerprint = table.name  # what the run records it replayed (open: + file hash)

    @classmethod
    def open(cls, path: str | Path, workers: int = 1, charge: str = "recorded") -> ReplayExecutor:
        """The executor for the table file at `path` (TableError if it is not one). A file this
        process read before and that has not changed since (same size and modification time)
        is not read again: a search checks its table and then opens the executor, and a
        benchmark replays one table hundreds of times."""
        path = Path(path)
        try:
            stat = path.stat()
            key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        except OSError:
            key = None  # `read` says what is wrong with the path
        if key is None or key not in _OPENED:
            table = read(path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            if key is not None:
                if len(_OPENED) >= OPENED_TABLES:
                    _OPENED.pop(next(iter(_OPENED)))
                _OPENED[key] = (table, digest)
        else:
            table, digest = _OPENED[key]
        executor = cls(table, workers, charge)
        executor.fingerprint = f"{table.name} {digest}"
        return executor

    def check_objectives(self, names: list[str], where: str) -> None:
        """NasError unless every objective in `names` has a value in the table (`where`: the
        file and key the message starts with)."""
        sample = next(iter(self.table.entries.values()), None)
        if sample is None:
            raise NasError(f"{where}: the table holds no configuration; "
                           "fix: export a table from a finished grid run")
        have = set(sample.costs) | set(sample.trainings[0].values) | set(
            sample.trainings[0].metrics)
        missing = [n for n in names if n not in have]
        if missing:
            costs = sorted(k for k in sample.costs if k.startswith("latency_") and
                           not k.endswith(("_spread", "_contended")))
            raise NasError(f"{where}: the table has no {', '.join(missing)}"
                           f" (it has {', '.join([*sorted(sample.trainings[0].values), *costs])}"
                           "); fix: search the objectives the table has (latency figures come "
                           "from `nas table measure`)")

    # -- the Executor contract ---------------------------------------------------------------
    def submit(self, request: TrialRequest) -> Future:
        future: Future = Future()
        try:
            future.set_result(self._answer(request))
        except TrialFailed as exc:
            future.set_exception(exc)
        return future

    def cancel(self, future: Future) -> bool:
        return False  # every future is done when submit returns

    def heal(self) -> None:
        pass

    def shutdown(self, cancel: bool = False) -> None:
        pass

    # -- answering ---------------------------------------------------------------------------
    def _answer(self, request: TrialRequest) -> WorkerOutput:
        spec = ArchSpec.from_json(request.spec_json)
        entry = self.table.lookup(spec)
        if entry is None:
            raise TrialFailed(f"ReplayMiss: configuration {spec.config_hash} "
                              f"({spec.short_form()}) is not in the table {self.table.name}",
                              failure=ERROR)
        training = entry.training_for(request.seed)
        metrics = {**entry.costs, **training.metrics, **training.values}
        if request.latency_only:  # a re-measurement: the recorded latencies, no cost
            names = [r["name"] for r in request.latency]
            result = TrialResult({n: metrics[n] for n in names if n in metrics}, device=DEVICE)
            return WorkerOutput(result, self.name, 0.0)
        kinds = {"params": int, "seq_len": int, "flops_per_token": float, "state_bytes": int}
        costs = ({k: kind(entry.costs[k]) for k, kind in kinds.items()}
                 if all(k in entry.costs for k in kinds) else None)
        seconds = entry.costs[STEADY] if self.charge == "steady" else training.device_seconds
        result = TrialResult(metrics, device=DEVICE, wall_seconds=seconds,
                             costs=costs)
        return WorkerOutput(result, self.name, seconds)
