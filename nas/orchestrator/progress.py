"""What a running search tells its user, in one of three modes (`nas search --progress`).

The loop owns a SearchState and calls a Reporter: `RichReporter` draws a live panel with a line
per trial (a terminal); `QuietReporter` prints one plain line per trial that ends and a summary
(logs); `JsonlReporter` prints one JSON object per event (logs that programs read);
`NullReporter` (tests, library use) ignores everything. Reporters never write the database.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from nas.budget import Budget
from nas.formatting import format_seconds, format_value
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
    proxies: list[dict] = field(default_factory=list)  # at the end: proxy-target rank agreement
    status: str = "running"  # then how it ended: finished | interrupted | failed
    message: str = ""  # why it ended

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
    def trial_retry(self, number: int, spec: ArchSpec, error: str, retries: int) -> None: ...
    def trial_pruned(self, number: int, spec: ArchSpec) -> None: ...
    def interrupted(self, running: int) -> None: ...
    def remeasuring(self, count: int, sessions: int) -> None: ...
    def trial_remeasured(self, number: int, spec: ArchSpec, before: dict[str, float],
                         after: dict[str, float]) -> None: ...
    def replicating(self, count: int, more_seeds: int) -> None: ...
    def trial_replicated(self, number: int, spec: ArchSpec, before: dict[str, float],
                         after: dict[str, float]) -> None: ...
    def stop(self, state: SearchState) -> None: ...


class NullReporter:
    """Reports nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


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
        first = escape(error.splitlines()[0]) if error else "failed"
        self.console.print(f"  trial {number:>3}  {describe_spec(spec):<28} [red]FAILED[/] {first}")

    def trial_infeasible(self, number, spec, reason) -> None:
        self.trial_duplicate(number, spec, None, f"infeasible: {reason}")

    def trial_duplicate(self, number, spec, of, why: str | None = None) -> None:
        """A sample that was not trained (already trained, or infeasible); a run of them prints
        only its first few lines."""
        self._duplicate_run += 1
        if self._duplicate_run <= _DUPLICATES_SHOWN:
            why = escape(why) if why else f"same as trial {of}: answered from the database"
            self.console.print(f"  trial {number:>3}  {describe_spec(spec):<28} [dim]{why}[/]",
                               highlight=False)
        elif self._duplicate_run == _DUPLICATES_SHOWN + 1:
            self.console.print("  [dim]… more samples not trained (duplicates or infeasible)[/]")

    def trial_retry(self, number, spec, error, retries) -> None:
        self._duplicate_run = 0
        first = escape(error.splitlines()[0]) if error else "worker lost"
        self.console.print(f"  trial {number:>3}  {describe_spec(spec):<28} [yellow]retry "
                           f"{retries}[/] {first}", highlight=False)

    def trial_pruned(self, number, spec) -> None:
        self.console.print(f"  trial {number:>3}  {describe_spec(spec):<28} [dim]pruned[/]")

    def interrupted(self, running) -> None:
        self.console.print(f"[yellow]Ctrl-C:[/] starting no more trials; waiting for {running} "
                           "running trial(s) to finish — Ctrl-C again cancels them")

    def remeasuring(self, count, sessions) -> None:
        self.console.print(f"re-measuring {count} trial(s) on or near the front: {sessions} "
                           "fresh latency session(s) each")

    def trial_remeasured(self, number, spec, before, after) -> None:
        self.console.print(f"  re-measured trial {number:>3}  {describe_spec(spec):<28} "
                           f"{_changes(before, after)}", highlight=False)

    def replicating(self, count, more_seeds) -> None:
        self.console.print(f"replicating {count} front trial(s) × {more_seeds} more seed(s): "
                           "mean and 95 % interval of the trained objectives")

    def trial_replicated(self, number, spec, before, after) -> None:
        self.console.print(f"  replicated trial {number:>3}  {describe_spec(spec):<28} "
                           f"{_changes(before, after)} (mean)", highlight=False)

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


def _trial_line(number: int, spec: ArchSpec, what: str) -> str:
    return f"trial {number:>3}  {describe_spec(spec):<28} {what}"


def _shown(values: dict[str, float]) -> str:
    return "  ".join(f"{k}={format_value(k, v)}" for k, v in values.items())


def _changes(before: dict[str, float], after: dict[str, float]) -> str:
    """'latency_ms 1.94 -> 1.90' for each value re-measured."""
    return "  ".join(f"{k} {format_value(k, before.get(k))} -> {format_value(k, v)}"
                     for k, v in after.items())


class QuietReporter:
    """Plain lines for logs: one per trial that completes, fails, is retried, infeasible or
    pruned (rungs, duplicates and trial starts are not printed), and a summary at the end.
    Every line is flushed at once."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def start(self, state: SearchState) -> None:
        self._print(f"nas search run {state.run_name} · budget {state.budget.text} · "
                    f"{state.workers} worker(s) x {state.threads} thread(s) · {state.storage}")

    def update(self, state: SearchState) -> None:
        pass

    def trial_started(self, number, spec) -> None:
        pass

    def trial_complete(self, number, spec, values, seconds) -> None:
        self._print(_trial_line(number, spec, f"{_shown(values)}  ({format_seconds(seconds)})"))

    def trial_failed(self, number, spec, error) -> None:
        first = error.splitlines()[0] if error else "failed"
        self._print(_trial_line(number, spec, f"FAILED {first}"))

    def trial_retry(self, number, spec, error, retries) -> None:
        first = error.splitlines()[0] if error else "worker lost"
        self._print(_trial_line(number, spec, f"RETRY {retries} {first}"))

    def trial_infeasible(self, number, spec, reason) -> None:
        self._print(_trial_line(number, spec, f"INFEASIBLE {reason}"))

    def trial_pruned(self, number, spec) -> None:
        self._print(_trial_line(number, spec, "PRUNED"))

    def trial_rung(self, number, spec, steps, values, decision) -> None:
        pass

    def trial_duplicate(self, number, spec, of) -> None:
        pass

    def interrupted(self, running) -> None:
        self._print(f"Ctrl-C: starting no more trials; waiting for {running} running trial(s) "
                    "to finish; Ctrl-C again cancels them")

    def remeasuring(self, count, sessions) -> None:
        self._print(f"re-measuring {count} trial(s) on or near the front: {sessions} fresh latency "
                    "session(s) each")

    def trial_remeasured(self, number, spec, before, after) -> None:
        self._print(f"re-measured {_trial_line(number, spec, _changes(before, after))}")

    def replicating(self, count, more_seeds) -> None:
        self._print(f"replicating {count} front trial(s) × {more_seeds} more seed(s)")

    def trial_replicated(self, number, spec, before, after) -> None:
        self._print(f"replicated {_trial_line(number, spec, _changes(before, after))} (mean)")

    def stop(self, state: SearchState) -> None:
        self._print(f"{state.status}: {state.message} · {state.complete} complete · "
                    f"{state.failed} failed · {state.infeasible} infeasible · "
                    f"{state.duplicates} duplicates · {state.pruned} pruned · "
                    f"budget {state.budget.describe(_spent(state))} · "
                    f"front {len(state.front)} trial(s)")


def _spent(state: SearchState) -> float:
    return state.elapsed() if state.budget.unit == "wall_seconds" else state.spent


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: those become null; numbers become floats, other values
    (names, counts) stay as they are."""
    return {k: (float(v) if math.isfinite(v) else None)
            if isinstance(v, float) else v for k, v in values.items()}


class JsonlReporter:
    """One JSON object per line and event, flushed at once, for logs that programs read.

    Every object has `event`, `time` (ISO 8601, UTC) and `run`. Events: start, trial_started,
    trial_complete (`values`, `seconds`), trial_failed (`error`), trial_retry (`error`,
    `retries`), trial_rung (`steps`, `values`, `decision`), trial_duplicate (`of`),
    trial_infeasible (`reason`), trial_pruned, interrupt (`running`), remeasure (`count`,
    `sessions`: the front's re-measurement begins), trial_remeasured (`before`, `after`: the
    latency values), replicate (`count`, `seeds`: the front's replicates begin, `seeds` more
    trainings per trial), trial_replicated (`before`: the first seed's values, `after`: the
    means of the trained objectives), budget (`spent`, `left`, `unit`, `device_seconds`;
    every `budget_every` seconds and before stop) and stop (`status`, `message`, the counts
    and `front`: the front's numbers). Trial events carry `number` and `arch` (the short form)."""

    def __init__(self, stream: IO[str] | None = None, budget_every: float = 30.0) -> None:
        self.stream = stream or sys.stdout
        self.budget_every = budget_every
        self._run = ""
        self._last_budget = -math.inf

    def _emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": datetime.now(timezone.utc).isoformat(),
                  "run": self._run, **fields}
        print(json.dumps(record, allow_nan=False, default=str), file=self.stream, flush=True)

    def _trial(self, event: str, number: int, spec: ArchSpec, **fields: Any) -> None:
        self._emit(event, number=number, arch=spec.short_form(), **fields)

    def start(self, state: SearchState) -> None:
        self._run = state.run_name
        self._emit("start", budget=state.budget.text, storage=state.storage,
                   workers=state.workers, threads=state.threads,
                   objectives=state.objectives)
        self._budget(state)

    def update(self, state: SearchState) -> None:
        if time.monotonic() - self._last_budget >= self.budget_every:
            self._budget(state)

    def _budget(self, state: SearchState) -> None:
        self._last_budget = time.monotonic()
        spent = float(_spent(state))
        self._emit("budget", spent=spent, left=max(0.0, state.budget.amount - spent),
                   unit=state.budget.unit, device_seconds=state.device_seconds,
                   complete=state.complete, running=state.running, failed=state.failed)

    def trial_started(self, number, spec) -> None:
        self._trial("trial_started", number, spec)

    def trial_complete(self, number, spec, values, seconds) -> None:
        self._trial("trial_complete", number, spec, values=_finite(values), seconds=seconds)

    def trial_failed(self, number, spec, error) -> None:
        self._trial("trial_failed", number, spec, error=error)

    def trial_retry(self, number, spec, error, retries) -> None:
        self._trial("trial_retry", number, spec, error=error, retries=retries)

    def trial_rung(self, number, spec, steps, values, decision) -> None:
        self._trial("trial_rung", number, spec, steps=steps, values=_finite(values),
                    decision=decision)

    def trial_duplicate(self, number, spec, of) -> None:
        self._trial("trial_duplicate", number, spec, of=of)

    def trial_infeasible(self, number, spec, reason) -> None:
        self._trial("trial_infeasible", number, spec, reason=reason)

    def trial_pruned(self, number, spec) -> None:
        self._trial("trial_pruned", number, spec)

    def interrupted(self, running) -> None:
        self._emit("interrupt", running=running)

    def remeasuring(self, count, sessions) -> None:
        self._emit("remeasure", count=count, sessions=sessions)

    def trial_remeasured(self, number, spec, before, after) -> None:
        self._trial("trial_remeasured", number, spec, before=_finite(before),
                    after=_finite(after))

    def replicating(self, count, more_seeds) -> None:
        self._emit("replicate", count=count, seeds=more_seeds)

    def trial_replicated(self, number, spec, before, after) -> None:
        self._trial("trial_replicated", number, spec, before=_finite(before),
                    after=_finite(after))

    def stop(self, state: SearchState) -> None:
        self._budget(state)
        self._emit("stop", status=state.status, message=state.message,
                   complete=state.complete, failed=state.failed, infeasible=state.infeasible,
                   duplicates=state.duplicates, pruned=state.pruned,
                   front=[t.number for t in state.front],
                   proxies=[_finite(row) for row in state.proxies])


def make_reporter(mode: str | None, stream: IO[str] | None = None, console: Console | None = None):
    """The reporter for a --progress mode: rich, quiet or jsonl; None picks rich when `stream`
    (default stdout) is a terminal, else quiet. ValueError on another name."""
    stream = stream or sys.stdout
    if mode is None:
        mode = "rich" if stream.isatty() else "quiet"
    if mode == "rich":
        return RichReporter(console)
    if mode == "quiet":
        return QuietReporter(stream)
    if mode == "jsonl":
        return JsonlReporter(stream)
    raise ValueError(f"unknown progress mode {mode!r}; use one of {', '.join(PROGRESS_MODES)}")


PROGRESS_MODES = ("rich", "quiet", "jsonl")
