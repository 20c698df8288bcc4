"""The Python API over a results database: `nas.open_store(url).run(name)`.

    import nas
    run = nas.open_store("sqlite:///nas.db").run("quickstart-1")
    run.pareto()             # [TrialRecord, ...]: frozen dataclasses
    run.trial(7).arch        # the ArchSpec of trial 7
    run.to_pandas()          # one row per trial (needs pandas)

Read-only by contract: the search driver is the only writer. No torch is imported here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import NasError
from nas.store.engine import DEFAULT_URL
from nas.store.store import ArtifactRecord, RunRecord, Store, TrialRecord

PANDAS_HINT = "pandas is not installed: pip install pandas (or pip install 'nas[pandas]')"


def open_store(url: str | None = None) -> Results:
    """The results at `url` (default: $NAS_STORAGE, else sqlite:///nas.db). A SQLite file that
    does not exist is a StoreError: reading never creates a database."""
    return Results(Store(url or os.environ.get("NAS_STORAGE") or DEFAULT_URL, create=False))


@dataclass(frozen=True)
class Results:
    """Every run of one database."""

    store: Store

    @property
    def url(self) -> str:
        return self.store.url

    def runs(self) -> list[RunRecord]:
        return self.store.runs()

    def run(self, name: str | int) -> RunResults:
        """One run by name (or id); StoreError naming the recent runs if there is none."""
        return RunResults(self.store, self.store.run(name))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RunResults:
    """One run: its summary (`record`) and its trials, read fresh on every call."""

    store: Store
    record: RunRecord

    @property
    def name(self) -> str:
        return self.record.name

    def trials(self, states: Sequence[str] | str | None = None) -> list[TrialRecord]:
        """Every trial in trial order, or only those in `states` (e.g. "COMPLETE")."""
        if isinstance(states, str):
            states = [states]
        return self.store.trials(self.record.id, [s.upper() for s in states] if states else None)

    def pareto(self) -> list[TrialRecord]:
        """The Pareto front over the run's objectives, in trial order."""
        return self.store.pareto(self.record.id)

    def trial(self, number: int) -> TrialRecord:
        return self.store.trial(self.record.id, number)

    def curve(self, number: int) -> list[tuple[int, str, float]]:
        """(step, metric, value) points of one trial's training curve."""
        return self.store.curve(self.record.id, number)

    def artifacts(self) -> list[ArtifactRecord]:
        """The files the run kept (trained weights of its front, by default)."""
        return self.store.artifacts(self.record.id)

    def to_pandas(self, states: Sequence[str] | str | None = None) -> Any:
        """A pandas DataFrame, one row per trial (index: number): state, mixers, width, depth,
        params, one column per objective, then every other metric, device-seconds, front flag,
        arch_hash, error and times. NasError if pandas is not installed."""
        try:
            import pandas as pd
        except ImportError:
            raise NasError(PANDAS_HINT) from None
        rows = [trial_row(self.record, t) for t in self.trials(states)]
        frame = pd.DataFrame(rows, columns=columns(self.record, rows))
        return frame.set_index("number")


def columns(run: RunRecord, rows: Sequence[dict[str, Any]]) -> list[str]:
    head = ["number", "state", "short_form", "d_model", "n_layers", "params",
            *run.objective_names]
    tail = ["device_seconds", "pareto", "arch_hash", "config_hash", "duplicate_of", "failure",
            "error", "started_at", "finished_at"]
    metrics = sorted({k for row in rows for k in row} - set(head) - set(tail))
    return head + metrics + tail


def trial_row(run: RunRecord, trial: TrialRecord) -> dict[str, Any]:
    """One trial as a flat dict (objective values and metrics as columns)."""
    row: dict[str, Any] = {**(trial.metrics or {})}
    row.update({name: (trial.values or {}).get(name) for name in run.objective_names})
    row.update(number=trial.number, state=trial.state, short_form=trial.short_form,
               d_model=trial.d_model, n_layers=trial.n_layers, params=trial.params,
               device_seconds=trial.device_seconds, pareto=trial.pareto,
               arch_hash=trial.arch_hash, config_hash=trial.config_hash,
               duplicate_of=trial.duplicate_of, failure=trial.failure, error=trial.error,
               started_at=trial.started_at, finished_at=trial.finished_at)
    return row
