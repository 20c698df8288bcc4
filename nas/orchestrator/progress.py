"""What a running search tells its user: a live panel (rich) and one line per finished trial.

The loop owns a SearchState and calls a Reporter; `RichReporter` draws it, `NullReporter`
(tests, library use) ignores it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from nas.orchestrator.budget import Budget, format_seconds
from nas.spec import ArchSpec
from nas.store import TrialRecord


@dataclass
class SearchState:
    run_name: str
    storage: str
    budget: Budget
    objectives: list[dict[str, str]]
    started: float
    workers: int = 1
    threads: int = 1
    complete: int = 0
    failed: int = 0
    duplicates: int = 0
    infeasible: int = 0
    paused: int = 0  # multi-fidelity: waiting at a rung for a promotion
    pruned: int = 0  # multi-fidelity: stopped at a rung for good
    running: int = 0
    spent: float = 0.0  # in the budget's unit
    device_seconds: float = 0.0
    front: list[TrialRecord] = field(default_factory=list)

    def elapsed(self) -> float:
        """Wall-clock seconds of the search, earlier sessions of a resumed run included."""
        return time.monotonic() - self.started

    def best(self) -> dict[str, float]:
        """Best value of each objective so far (always attained on the front)."""
        out = {}
        for objective in self.objectives:
            name, values = objective["name"], [t.values[objective["name"]] for t in self.front]
            if values:
                out[name] = max(values) if objective["direction"] == "maximize" else min(values)
        return out


class Reporter(Protocol):
    def start(self, state: SearchState) -> None: ...
    def update(self, state: SearchState) -> None: ...
    def trial_started(self, number: int, spec: ArchSpec) -> None: ...
    def trial_complete(self, number: int, spec: ArchSpec, values: dict[str, float],
                       seconds: float) -> None: ...
    def trial_failed(self, number: int, spec: ArchSpec, error: str) -> None: ...
    def trial_rung(self, number: int, spec: ArchSpec, steps: int, values: dict[str, float],
                   decision: str) -> None: ...
    def trial_duplicate(self, number: int, spec: ArchSpec, of: int) -> None: ...
    def trial_infeasible(self, number: int, spec: ArchSpec, reason: str) -> None: ...
    def stop(self, state: SearchState) -> None: ...


class NullReporter:
    """Reports nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def format_value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name == "params":
        return f"{value / 1e6:.3f}M" if value >= 1e5 else f"{int(value):,}"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.4e}"


def describe_spec(spec: ArchSpec) -> str:
    return f"{spec.short_form()}  d={spec.d_model}  {spec.layers[0].channel_mixer.kind}"


_DUPLICATES_SHOWN = 3


class RichReporter:
    """A live panel refreshed twice a second, with a printed line per finished trial."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._state: SearchState | None = None
        self._live: Live | None = None
        self._duplicate_run = 0  # consecutive duplicates printed since the last real trial

    def start(self, state: SearchState) -> None:
        self._state = state
        self.console.print(
            f"[bold]nas search[/] run [cyan]{state.run_name}[/] · budget {state.budget.text} · "
            f"{state.workers} worker(s) × {state.threads} thread(s) · {state.storage}"
        )
        self._live = Live(self._panel(), console=self.console, refresh_per_second=2,
                          transient=True, get_renderable=self._panel)
        self._live.start()

    def update(self, state: SearchState) -> None:
        self._state = state

    def trial_started(self, number: int, spec: ArchSpec) -> None:
        pass

    def trial_complete(self, number, spec, values, seconds) -> None:
        self._duplicate_run = 0
        shown = "  ".join(f"{k}={format_value(k, v)}" for k, v in values.items())
        self.console.print(f"  trial {number:>3}  {describe_spec(spec):<28} {shown}  "
                           f"[dim]({format_seconds(seconds)})[/]")

    def trial_rung(self, number, spec, steps, values, decision) -> None:
        self._duplicate_run = 0
        shown = "  ".join(f"{k}={format_value(k, v)}" for k, v in values.items())
        what = "[green]continues[/]" if decision == "continue" else "[yellow]paused[/]"
        self.console.print(f"  trial {number:>3}  {describe_spec(spec):<28} {shown}  "
                           f"[dim]at step {steps}[/] {what}")

    def trial_failed(self, number, spec, error) -> None:
        self._duplicate_run = 0
        first = error.splitlines()[0] if error else "failed"
        self.console.print(f"  trial {number:>3}  {describe_spec(spec):<28} [red]FAILED[/] {first}")

    def trial_infeasible(self, number, spec, reason) -> None:
        self.trial_duplicate(number, spec, None, f"infeasible: {reason}")

    def trial_duplicate(self, number, spec, of, why: str | None = None) -> None:
        """A sample that was not trained (already trained, or infeasible); a run of them prints
        only its first few lines."""
        self._duplicate_run += 1
        if self._duplicate_run <= _DUPLICATES_SHOWN:
            why = why or f"same as trial {of}: answered from the database"
            self.console.print(f"  trial {number:>3}  {describe_spec(spec):<28} [dim]{why}[/]",
                               highlight=False)
        elif self._duplicate_run == _DUPLICATES_SHOWN + 1:
            self.console.print("  [dim]… more samples not trained (duplicates or infeasible)[/]")

    def stop(self, state: SearchState) -> None:
        if self._live is not None:
            self._live.stop()

    def _panel(self) -> Table:
        state = self._state
        if state is None:
            return Table()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        rungs = (f" · {state.paused} paused · {state.pruned} pruned"
                 if state.paused or state.pruned else "")
        grid.add_row("trials", f"{state.complete} complete · {state.running} running{rungs} · "
                     f"{state.failed} failed · {state.duplicates} duplicates · "
                     f"{state.infeasible} infeasible")
        budget = state.budget
        spent = state.elapsed() if budget.unit == "wall_seconds" else state.spent
        line = Table.grid(padding=(0, 1))
        line.add_row(ProgressBar(total=1.0, completed=budget.fraction(spent), width=24),
                     f"{budget.describe(spent)} · {budget.describe_left(spent)} left")
        grid.add_row("budget", line)
        best = state.best()
        grid.add_row("best", "  ".join(f"{k} {format_value(k, v)}" for k, v in best.items())
                     or "-")
        grid.add_row("front", f"{len(state.front)} trial(s)")
        return grid
