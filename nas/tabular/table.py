"""Tabular benchmarks: every configuration of a finite space, really trained, kept as data.

A table is built by nas itself: a search of the space with the `grid` strategy and
`search.replicates: {seeds: N, for: all}` trains every configuration with N seeds, and
`export_table` turns that run into a `Table`. A search can later be answered from the table
instead of training (replay), so a strategy is compared over hundreds of seeds in seconds.

File format (`write` / `read`): gzip-compressed JSON, one object —

    {"format": "nas-table", "version": 1,
     "name": "hybrid_recall", "space": "<the space file's text>",
     "objectives": [{"name": "accuracy", "direction": "maximize"}, ...],
     "source": {"run": ..., "host": ..., "versions": {...}, "exported_at": ...},
     "entries": [{"config_hash": "...", "spec": {ArchSpec as a dict},
                  "costs": {"params": ..., "flops_per_token": ..., "state_bytes": ..., ...},
                  "trainings": [{"seed": 0, "values": {"accuracy": ...},
                                 "metrics": {...}, "device_seconds": 31.4}, ...]}, ...]}

`trainings` holds one record per training seed: the values of the objectives a seed changes
(`values`), every metric that training reported (`metrics`; the first training only, for the
ones replicates do not record) and the device-seconds it cost.

A table may come from someone else: `read` treats it as data — JSON only (nothing in it is
executed or unpickled), at most MAX_BYTES compressed and MAX_JSON_BYTES uncompressed, every
field checked for type and range; a bad file raises TableError naming the file, the field and
the fix.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.spec import ArchSpec

FORMAT, VERSION = "nas-table", 1
MAX_BYTES = 64 * 2**20  # a compressed table file
MAX_JSON_BYTES = 512 * 2**20  # its JSON once decompressed (gzip bombs stop here)
MAX_ENTRIES = 1_000_000


class TableError(NasError):
    """A table file that cannot be used: one line naming the file, the field and the fix."""


@dataclass(frozen=True)
class Training:
    """One training of a configuration: its seed, the seed-dependent objective values, the
    metrics it reported and the device-seconds it cost."""

    seed: int
    values: dict[str, float]
    device_seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """One configuration: its ArchSpec (architecture and recipe), analytic costs and trainings
    (at least one)."""

    config_hash: str
    spec: ArchSpec
    costs: dict[str, float]
    trainings: tuple[Training, ...]

    def training_for(self, seed: int) -> Training:
        """The training a trial with search seed `seed` is answered with: recorded seeds are
        taken in turn (seed mod their count), so a replayed search sees the seed-to-seed noise
        the table recorded."""
        return self.trainings[seed % len(self.trainings)]


@dataclass(frozen=True)
class Table:
    """A tabular benchmark: see the module docstring."""

    name: str
    space: str
    objectives: tuple[dict[str, str], ...]
    entries: dict[str, Entry]  # by config_hash
    source: dict[str, Any] = field(default_factory=dict)

    def lookup(self, spec: ArchSpec) -> Entry | None:
        """The entry of `spec`'s configuration, or None when the table does not hold it."""
        return self.entries.get(spec.config_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "name": self.name, "space": self.space,
            "objectives": [dict(o) for o in self.objectives], "source": dict(self.source),
            "entries": [{"config_hash": e.config_hash, "spec": e.spec.to_dict(),
                         "costs": dict(e.costs),
                         "trainings": [{"seed": t.seed, "values": dict(t.values),
                                        "metrics": dict(t.metrics),
                                        "device_seconds": t.device_seconds}
                                       for t in e.trainings]}
                        for e in self.entries.values()],
        }


def write(table: Table, path: str | Path) -> Path:
    """Write `table` to `path` (gzip JSON; the folder must exist); returns the path."""
    path = Path(path)
    data = json.dumps(table.to_json(), separators=(",", ":"), sort_keys=True).encode()
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as fh:  # mtime 0: reproducible
        fh.write(data)
    return path


def read(path: str | Path) -> Table:
    """The table in `path`; TableError for anything but a well-formed table (module docstring)."""
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TableError(f"{where}: cannot read the table ({exc.strerror or exc}); fix: give "
                         "the path of a table file written by nas") from None
    if size > MAX_BYTES:
        raise TableError(f"{where}: {size:,} bytes is more than a table may be ({MAX_BYTES:,});"
                         " fix: use a table written by nas")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise TableError(f"{where}: not a gzip-compressed table ({exc}); fix: use a table "
                         "written by nas (export_table / write)") from None
    if len(raw) > MAX_JSON_BYTES:
        raise TableError(f"{where}: decompresses to more than {MAX_JSON_BYTES:,} bytes; fix: "
                         "use a table written by nas")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise TableError(f"{where}: not JSON ({str(exc)[:200]}); fix: use a table written by "
                         "nas") from None
    return _parse(doc, where)


# -- reading: every field checked ---------------------------------------------------------------

def _fail(where: str, key: str, problem: str) -> TableError:
    return TableError(f"{where}: {key}: {problem}; fix: use a table written by nas (the file "
                      "is damaged or was edited)")


def _expect(value: Any, kind: type | tuple[type, ...], where: str, key: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(where, key, f"expected {name}, found {type(value).__name__}")
    return value


def _numbers(value: Any, where: str, key: str) -> dict[str, float]:
    out = {}
    for name, number in _expect(value, dict, where, key).items():
        _expect(number, (int, float), where, f"{key}.{name}")
        if not math.isfinite(number):
            raise _fail(where, f"{key}.{name}", "not a finite number")
        out[str(name)] = float(number)
    return out


def _parse(doc: Any, where: str) -> Table:
    _expect(doc, dict, where, "the document")
    if doc.get("format") != FORMAT:
        raise _fail(where, "format", f"expected {FORMAT!r}, found {str(doc.get('format'))[:40]!r}")
    if doc.get("version") != VERSION:
        raise TableError(f"{where}: version {str(doc.get('version'))[:20]} is not one this nas "
                         f"reads ({VERSION}); fix: upgrade nas, or re-export the table")
    name = _expect(doc.get("name"), str, where, "name")
    space = _expect(doc.get("space"), str, where, "space")
    objectives = []
    for i, o in enumerate(_expect(doc.get("objectives"), list, where, "objectives")):
        _expect(o, dict, where, f"objectives.{i}")
        _expect(o.get("name"), str, where, f"objectives.{i}.name")
        if o.get("direction") not in ("minimize", "maximize"):
            raise _fail(where, f"objectives.{i}.direction", "expected minimize or maximize")
        objectives.append({"name": o["name"], "direction": o["direction"]})
    entries_raw = _expect(doc.get("entries"), list, where, "entries")
    if len(entries_raw) > MAX_ENTRIES:
        raise _fail(where, "entries", f"more than {MAX_ENTRIES:,}")
    entries: dict[str, Entry] = {}
    for i, raw in enumerate(entries_raw):
        key = f"entries.{i}"
        _expect(raw, dict, where, key)
        try:
            spec = ArchSpec.from_dict(_expect(raw.get("spec"), dict, where, f"{key}.spec"))
        except (TypeError, ValueError, KeyError) as exc:
            raise _fail(where, f"{key}.spec", f"not an architecture ({str(exc)[:200]})") from None
        if raw.get("config_hash") != spec.config_hash:
            raise _fail(where, f"{key}.config_hash", "does not match its spec")
        trainings = []
        for j, t in enumerate(_expect(raw.get("trainings"), list, where, f"{key}.trainings")):
            tkey = f"{key}.trainings.{j}"
            _expect(t, dict, where, tkey)
            seconds = _expect(t.get("device_seconds"), (int, float), where,
                              f"{tkey}.device_seconds")
            if not math.isfinite(seconds) or seconds < 0:
                raise _fail(where, f"{tkey}.device_seconds", "not a number of seconds >= 0")
            trainings.append(Training(
                seed=_expect(t.get("seed"), int, where, f"{tkey}.seed"),
                values=_numbers(t.get("values"), where, f"{tkey}.values"),
                device_seconds=float(seconds),
                metrics=_numbers(t.get("metrics", {}), where, f"{tkey}.metrics")))
        if not trainings:
            raise _fail(where, f"{key}.trainings", "no training recorded")
        if spec.config_hash in entries:
            raise _fail(where, f"{key}.config_hash", "appears twice")
        entries[spec.config_hash] = Entry(spec.config_hash, spec,
                                          _numbers(raw.get("costs", {}), where, f"{key}.costs"),
                                          tuple(trainings))
    source = doc.get("source", {})
    return Table(name, space, tuple(objectives), entries,
                 source if isinstance(source, dict) else {})


# -- building: from a run of the grid -----------------------------------------------------------

def export_table(store: Any, run_ref: str | int, replicated: Sequence[str] | None = None,
                 ) -> Table:
    """The table of run `run_ref` in `store` (a nas.store.Store): one entry per completed
    trial, one training per seed its replicates recorded (`{obj}_initial`,
    `{obj}_replicate_K` for the objectives in `replicated`, default: every objective with
    such metrics), each with the device-seconds its ledger rows charged."""
    from nas.store import COMPLETE

    run = store.run(run_ref)
    trials = store.trials(run.id, states=[COMPLETE])
    names = [o["name"] for o in run.objectives]
    seconds = _training_seconds(store.ledger_entries(run.id))
    entries: dict[str, Entry] = {}
    for trial in trials:
        spec = trial.arch
        metrics = dict(trial.metrics or {})
        seeds = _seeds(metrics, names if replicated is None else list(replicated))
        per_seed = seconds.get(trial.number, [])
        trainings = []
        for k in range(seeds):
            values = {n: _seed_value(metrics, trial.values or {}, n, k) for n in names}
            trainings.append(Training(
                seed=run.seed + k, values=values,
                device_seconds=per_seed[k] if k < len(per_seed) else trial.device_seconds / seeds,
                metrics=_first_training_metrics(metrics) if k == 0 else {}))
        arch = store.architecture(trial.arch_hash) or {}
        costs = {k: float(v) for k, v in arch.items()
                 if isinstance(v, int | float) and not isinstance(v, bool)}
        entries.setdefault(spec.config_hash, Entry(spec.config_hash, spec, costs,
                                                   tuple(trainings)))
    return Table(name=run.name.rsplit("-", 1)[0], space=run.space_text,
                 objectives=tuple({"name": o["name"], "direction": o["direction"]}
                                  for o in run.objectives),
                 entries=entries,
                 source={"run": run.name, "host": run.host, "versions": dict(run.versions),
                         "exported_at": datetime.now(UTC).isoformat(timespec="seconds")})


_REPLICATE_SUFFIXES = ("_initial", "_replicates", "_mean", "_std", "_ci_low", "_ci_high",
                       "_spread")


def _seeds(metrics: Mapping[str, float], names: Sequence[str]) -> int:
    counts = [int(metrics[f"{n}_replicates"]) for n in names if f"{n}_replicates" in metrics]
    return max(counts, default=1)


def _seed_value(metrics: Mapping[str, float], values: Mapping[str, float], name: str,
                k: int) -> float:
    """Objective `name` of training k (0: the first): the replicate's own value where the
    objective was replicated, else the trial's value (an objective no seed changes, e.g.
    params, or a measured one: a re-measurement keeps its own `{name}_initial`)."""
    if f"{name}_replicates" in metrics:
        key = f"{name}_initial" if k == 0 else f"{name}_replicate_{k}"
        return float(metrics.get(key, math.nan))
    return float(values.get(name, math.nan))


def _first_training_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics of the first training: replicate bookkeeping left out."""
    return {k: float(v) for k, v in metrics.items()
            if not k.endswith(_REPLICATE_SUFFIXES) and "_replicate_" not in k
            and math.isfinite(float(v))}


def _training_seconds(ledger: Sequence[Any]) -> dict[int, list[float]]:
    """Per trial, the device-seconds of each training in order: its own charges (every row
    but replicates, summed: a retried or multi-fidelity trial has several), then one per
    replicate row."""
    own: dict[int, float] = {}
    replicates: dict[int, list[float]] = {}
    for row in ledger:
        if row.trial_number is None:
            continue
        if row.note == "replicate":
            replicates.setdefault(row.trial_number, []).append(row.device_seconds)
        else:
            own[row.trial_number] = own.get(row.trial_number, 0.0) + row.device_seconds
    return {n: [own.get(n, 0.0), *replicates.get(n, [])] for n in own | replicates}
