"""Rendering store records for the terminal (rich tables) and for programs (JSON), and a
space's notes."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nas.formatting import format_seconds, format_value
from nas.store import RunRecord, TrialRecord
from nas.store.models import utcnow

FORMATS = ("table", "json", "csv")
# The flat columns of a trial (`--format csv`, `--sort`, `--where`); objective columns go between
# the two. `failure` is the failure class (nas.failures), empty for a trial that did not fail.
TRIAL_COLUMNS = ("number", "state", "short_form", "d_model", "n_layers", "params")
TRIAL_TAIL_COLUMNS = ("device_seconds", "pareto", "arch_hash", "failure")


def print_json(console: Console, data: Any) -> None:
    """Plain JSON on stdout (no colour codes, no wrapping), so programs can parse it."""
    console.file.write(json.dumps(data, indent=2, default=str) + "\n")


def print_csv(console: Console, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """A header row then one row per record on stdout; missing values are empty cells."""
    writer = csv.DictWriter(console.file, fieldnames=list(columns), lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})


def trial_columns(run: RunRecord) -> list[str]:
    """The flat columns of `run`'s trials: fixed ones, one per objective, then the tail."""
    return [*TRIAL_COLUMNS, *run.objective_names, *TRIAL_TAIL_COLUMNS]


def trial_row(run: RunRecord, trial: TrialRecord) -> dict[str, Any]:
    """One trial as flat values keyed by `trial_columns(run)` (None where there is no value)."""
    values = trial.values or {}
    return {
        "number": trial.number, "state": trial.state, "short_form": trial.short_form,
        "d_model": trial.d_model, "n_layers": trial.n_layers, "params": trial.params,
        **{name: values.get(name) for name in run.objective_names},
        "device_seconds": trial.device_seconds, "pareto": trial.pareto,
        "arch_hash": trial.arch_hash, "failure": trial.failure,
    }


def trial_row_with_metrics(run: RunRecord, trial: TrialRecord) -> dict[str, Any]:
    """`trial_row` plus one column per metric, in name order. A metric already shown as a
    column (objectives, params: they are copied from the metrics) is not repeated; should it
    ever differ from that column, it appears as `metric.NAME`."""
    row = trial_row(run, trial)
    for name, value in sorted((trial.metrics or {}).items()):
        if name not in row:
            row[name] = value
        elif row[name] != value:
            row[f"metric.{name}"] = value
    return row


def run_row(run: RunRecord) -> dict[str, Any]:
    """A run as flat values for `nas runs --format csv`."""
    data = run_to_dict(run)
    data["objectives"] = "; ".join(f"{o['name']} ({o['direction']})" for o in run.objectives)
    data["versions"] = "; ".join(f"{k}={v}" for k, v in sorted(run.versions.items()))
    return data


# A timing's relative spread above this is flagged where it is shown (`nas show`, `nas trials`).
NOISY_SPREAD = 0.10
CONTENDED_NOTE = ("contended: other processes needed the cores while it was timed (retried, "
                  "then kept and flagged); time it again on a quieter machine")


def spread_text(spread: float | None) -> str:
    """A relative spread as a percentage, flagged (yellow, '!') above NOISY_SPREAD."""
    if spread is None:
        return "-"
    text = f"{spread:.1%}"
    return f"[yellow]{text} ![/]" if spread > NOISY_SPREAD else text


def contended_text(contended: float | bool | None) -> str:
    """'contended' (red) for a contended timing, 'no' for a clean one, '-' when unknown."""
    if contended is None:
        return "-"
    return "[red]contended[/]" if contended else "no"


def replicate_interval(name: str, metrics: dict[str, Any]) -> tuple[float, float, int, int] | None:
    """(mean, half-width of the 95 % interval, seeds averaged, seeds failed) of objective
    `name` where its trial was replicated (`search.replicates`), else None."""
    count = metrics.get(f"{name}_replicates")
    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    if not (_is_number(count) and _is_number(low) and _is_number(high)):
        return None
    mean = metrics.get(f"{name}_mean", (low + high) / 2)
    failed = sum(1 for key, v in metrics.items()
                 if key.startswith(f"{name}_replicate_") and key.endswith("_failed") and v)
    return float(mean), float(high - mean), int(count), failed


def mean_text(name: str, metrics: dict[str, Any], seeds: bool = False) -> str | None:
    """'0.612 ± 0.041' for a replicated objective (the mean to the half-width's precision),
    with ' (3 seeds)' or ' (2 seeds, 1 failed)' when `seeds`; None when not replicated."""
    found = replicate_interval(name, metrics)
    if found is None:
        return None
    mean, half, count, failed = found
    if half > 0 and math.isfinite(half):
        digits = max(0, 1 - math.floor(math.log10(half)))
        text = f"{mean:.{digits}f} ± {half:.{digits}f}"
    else:
        text = f"{format_value(name, mean)} ± 0"
    if seeds:
        text += f" ({count} seed{'s' if count != 1 else ''}"
        text += f", {failed} failed)" if failed else ")"
    return text


def timing_flags(name: str, metrics: dict[str, Any]) -> tuple[bool, bool]:
    """(noisy, contended) of objective `name` from a trial's metrics: its spread is above
    NOISY_SPREAD; other work competed with its timing. A replicated (trained) objective's
    spread is its interval's, no timing: never flagged."""
    if replicate_interval(name, metrics) is not None:
        return False, False
    spread = metrics.get(f"{name}_spread")
    return (_is_number(spread) and spread > NOISY_SPREAD,
            bool(metrics.get(f"{name}_contended")))


def objective_cell(name: str, value: float | None, metrics: dict[str, Any]) -> str:
    """An objective's value, then its spread where that is above NOISY_SPREAD (±23 %) and
    'contended' where its timing was; a replicated objective as 'mean ± half-width' of its
    95 % interval."""
    replicate = mean_text(name, metrics) if value is not None else None
    if replicate is not None:
        return replicate
    text = format_value(name, value)
    noisy, contended = timing_flags(name, metrics)
    if value is not None and noisy:
        text += f" [yellow]±{metrics[f'{name}_spread']:.0%}[/]"
    if value is not None and contended:
        text += " [red]contended[/]"
    return text


def metric_text(name: str, value: Any) -> str:
    """A metric as `nas show` lists it: spreads as flagged percentages, contention as words."""
    if name.endswith("_contended") and _is_number(value):
        return contended_text(value)
    if name.endswith("_spread") and _is_number(value):
        return spread_text(value)
    return format_value(name, value)


RUN_COLUMNS = ("name", "status", "stalled", "created_at", "finished_at", "trials_complete",
               "trials_total", "budget", "device_seconds", "strategy", "seed", "objectives",
               "space_path", "space_hash", "host", "versions", "message")


def near_front(run: RunRecord, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The completed trials off the front whose place there may be measurement noise: no
    trial dominates them beyond the latency spreads (`{objective}_spread` metrics) or the
    replicate intervals (`{objective}_ci_low`/`_ci_high`, search.replicates)."""
    from nas.strategies.pareto import front_and_near

    done = [t for t in trials if t.state == "COMPLETE" and t.values]
    _, near = front_and_near(done, run.objective_names, run.directions)
    return [t for t, flag in zip(done, near, strict=True) if flag]


def trials_table(title: str, run: RunRecord, trials: Sequence[TrialRecord],
                 near: Collection[int] = ()) -> Table:
    """One row per trial: number, mixers per layer, width, depth, params, objectives (a timed
    one flagged with its spread above NOISY_SPREAD and 'contended' where it was, explained in
    the caption); the front column is ★ on the front and ≈ for the trials numbered in `near`
    (within measurement noise of it)."""
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("trial", justify="right")
    table.add_column("state")
    table.add_column("mixers")
    table.add_column("d_model", justify="right")
    table.add_column("layers", justify="right")
    table.add_column("params", justify="right")
    for objective in run.objectives:
        arrow = "↑" if objective["direction"] == "maximize" else "↓"
        table.add_column(f"{objective['name']} {arrow}", justify="right")
    table.add_column("time", justify="right")
    table.add_column("front", justify="center")
    for t in trials:
        values, metrics = t.values or {}, t.metrics or {}
        cells = [objective_cell(n, values.get(n), metrics) for n in run.objective_names]
        state = {"COMPLETE": "[green]complete[/]", "FAIL": "[red]failed[/]",
                 "RUNNING": "[yellow]running[/]"}.get(t.state, f"[dim]{t.state.lower()}[/]")
        if t.duplicate_of is not None:
            state = f"[dim]= {t.duplicate_of}[/]"
        elif t.failure is not None:  # why: diverged, oom, timeout, lost, ...
            state = f"[red]{t.failure}[/]" if t.state == "FAIL" else f"[dim]{t.failure}[/]"
        elif t.state in ("PRUNED", "PAUSED") and (t.metrics or {}).get("steps"):
            state = f"[dim]{t.state.lower()} @{int(t.metrics['steps'])}[/]"  # its values' step
        table.add_row(
            str(t.number), state, t.short_form, str(t.d_model), str(t.n_layers),
            format_value("params", t.params), *cells,
            format_seconds(t.device_seconds) if t.device_seconds else "-",
            "★" if t.pareto else ("≈" if t.number in near else ""),
        )
    notes = value_notes(trials, run.objective_names)
    if notes:
        table.caption = "\n".join(notes)
        table.caption_justify = "left"
    return table


def value_notes(trials: Sequence[TrialRecord], names: Sequence[str]) -> list[str]:
    """The caption lines that explain how `objective_cell` marked the objectives `names` of
    `trials`: a noisy or contended timing, a replicated value."""
    flagged = replicates = False
    for t in trials:
        values, metrics = t.values or {}, t.metrics or {}
        flagged = flagged or any(values.get(n) is not None and any(timing_flags(n, metrics))
                                 for n in names)
        replicates = replicates or any(replicate_interval(n, metrics) is not None
                                       for n in names)
    notes = []
    if flagged:
        notes.append(f"±: the timing's spread, shown above {NOISY_SPREAD:.0%}; {CONTENDED_NOTE}")
    if replicates:
        notes.append("mean ± half-width: the 95 % interval of the mean over the seeds a "
                     "trial was trained with (search.replicates); ≈ where intervals overlap")
    return notes


def run_status(run: RunRecord) -> str:
    """The stored status, with 'running' told apart from a run whose driver is gone (stopped
    beating, or its process on this host has exited)."""
    from nas.orchestrator.heartbeat import driver_gone

    if driver_gone(run):
        return "stalled (driver gone: nas resume)"
    return run.status


def runs_table(runs: Sequence[RunRecord]) -> Table:
    table = Table(title="runs", title_justify="left", header_style="bold")
    for column in ("run", "status", "created (UTC)", "trials", "budget", "device time",
                   "wall time", "strategy", "objectives"):
        table.add_column(column)
    for run in runs:
        end = run.finished_at or utcnow()
        table.add_row(
            run.name, run_status(run), run.created_at.strftime("%Y-%m-%d %H:%M"),
            f"{run.trials_complete} complete / {run.trials_total}", run.budget,
            format_seconds(run.device_seconds),
            format_seconds((end - run.created_at).total_seconds()), run.strategy,
            ", ".join(f"{o['name']} ({o['direction'][:3]})" for o in run.objectives),
        )
    return table


def run_to_dict(run: RunRecord) -> dict[str, Any]:
    return {
        "name": run.name, "status": run.status, "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "space_path": run.space_path, "space_hash": run.space_hash,
        "objectives": run.objectives, "strategy": run.strategy, "seed": run.seed,
        "budget": run.budget, "device_seconds": run.device_seconds,
        "trials_complete": run.trials_complete, "trials_total": run.trials_total,
        "versions": run.versions, "host": run.host, "message": run.message,
        "driver_pid": run.driver_pid,
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
        "stalled": run_status(run) != run.status,
    }


def trial_detail(run: RunRecord, trial: TrialRecord,
                 curve: Sequence[tuple[int, str, float]]) -> list[Any]:
    """Renderables for `nas show`: summary, layers, training recipe, metrics, curve, error."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("trial", f"{run.name}/{trial.number}")
    head.add_row("state", trial.state + (f" (same as trial {trial.duplicate_of})"
                                         if trial.duplicate_of is not None else "")
                 + (f" ({trial.failure})" if trial.failure else ""))
    head.add_row("mixers", trial.short_form)
    head.add_row("arch_hash", trial.arch_hash)
    head.add_row("device", trial.device or "-")
    head.add_row("device time", format_seconds(trial.device_seconds))
    head.add_row("on front", "yes" if trial.pareto else "no")
    for name in run.objective_names:  # replicated: mean ± half-width of the 95 % interval
        text = mean_text(name, trial.metrics or {}, seeds=True)
        if text is not None:
            head.add_row(name, text)
    spec = trial.spec
    layers = Table(title="layers", title_justify="left", header_style="bold")
    for column in ("#", "token mixer", "channel mixer"):
        layers.add_column(column)
    for i, layer in enumerate(spec["layers"]):
        layers.add_row(str(i), _module_text(layer["mixer"]), _module_text(layer["channel_mixer"]))
    model = Table.grid(padding=(0, 2))
    model.add_column(style="bold")
    model.add_column()
    model.add_row("d_model", str(spec["d_model"]))
    model.add_row("vocab_size", str(spec["vocab_size"]))
    model.add_row("norm", spec.get("norm", "rmsnorm"))
    model.add_row("training", ", ".join(f"{k}={_short(v)}"
                                        for k, v in sorted(spec["training"].items())))
    parts: list[Any] = [head, layers, model]
    if trial.metrics:
        metrics = Table(title="metrics", title_justify="left", header_style="bold")
        metrics.add_column("name")
        metrics.add_column("value", justify="right")
        for name, value in sorted(trial.metrics.items()):
            if name.endswith("_spread") and _is_number(value) and replicate_interval(
                    name.removesuffix("_spread"), trial.metrics) is not None:
                metrics.add_row(name, f"{value:.1%}")  # an interval's width, no noisy timing
                continue
            metrics.add_row(name, metric_text(name, value))
        parts.append(metrics)
    losses = [(step, v) for step, name, v in curve if name == "train_loss"]
    if losses:
        picks = losses[:: max(1, len(losses) // 8)] + [losses[-1]]
        shown = " → ".join(f"{v:.3f}@{s}" for s, v in dict(picks).items())
        parts.append(f"[bold]train loss[/]  {shown}")
    if trial.error:
        parts.append(f"[bold red]error[/]\n{escape(trial.error)}")
    return parts


def compare_table(a: tuple[RunRecord, TrialRecord], b: tuple[RunRecord, TrialRecord]) -> Table:
    """Two trials side by side: architecture per layer, recipe, objectives, metrics, B − A."""
    (run_a, ta), (run_b, tb) = a, b
    table = Table(title=f"{run_a.name}/{ta.number} (A) vs {run_b.name}/{tb.number} (B)",
                  title_justify="left", header_style="bold")
    table.add_column("")
    table.add_column(f"A  {run_a.name}/{ta.number}")
    table.add_column(f"B  {run_b.name}/{tb.number}")
    table.add_column("B − A", justify="right")

    def row(label: str, x: Any, y: Any, name: str = "", numeric: bool = False,
            direction: str | None = None) -> None:
        text_x, text_y = (_cell(name, x), _cell(name, y)) if numeric else (_text(x), _text(y))
        diff = _difference(name, x, y) if numeric else ""
        if direction and diff not in ("", "0"):  # green where B is better than A, red if worse
            better = (y > x) == (direction == "maximize")
            diff = f"[{'green' if better else 'red'}]{diff}[/]"
        table.add_row(label, text_x, text_y, diff, style=None if text_x == text_y else "bold")

    row("state", ta.state, tb.state)
    row("mixers", ta.short_form, tb.short_form)
    row("arch_hash", ta.arch_hash, tb.arch_hash)
    row("d_model", ta.d_model, tb.d_model, "d_model", numeric=True)
    row("layers", ta.n_layers, tb.n_layers, "n_layers", numeric=True)
    row("params", ta.params, tb.params, "params", numeric=True)
    layers_a, layers_b = ta.spec.get("layers", []), tb.spec.get("layers", [])
    table.add_section()
    for i in range(max(len(layers_a), len(layers_b))):
        la = layers_a[i] if i < len(layers_a) else None
        lb = layers_b[i] if i < len(layers_b) else None
        row(f"layer {i} token mixer", la and _module_text(la["mixer"]),
            lb and _module_text(lb["mixer"]))
        row(f"layer {i} channel mixer", la and _module_text(la["channel_mixer"]),
            lb and _module_text(lb["channel_mixer"]))
    table.add_section()
    for key in ("vocab_size", "norm"):
        row(key, ta.spec.get(key), tb.spec.get(key))
    train_a, train_b = ta.spec.get("training", {}), tb.spec.get("training", {})
    for key in sorted(set(train_a) | set(train_b)):
        x, y = train_a.get(key), train_b.get(key)
        row(f"training.{key}", x, y, key, numeric=_is_number(x) or _is_number(y))
    table.add_section()
    objectives = {o["name"]: o["direction"] for o in [*run_b.objectives, *run_a.objectives]}
    values_a, values_b = ta.values or {}, tb.values or {}
    for name in _union(run_a.objective_names, run_b.objective_names):
        arrow = "↑" if objectives[name] == "maximize" else "↓"
        row(f"{name} {arrow}", values_a.get(name), values_b.get(name), name, numeric=True,
            direction=objectives[name])
    metrics_a, metrics_b = ta.metrics or {}, tb.metrics or {}
    shown = set(objectives) | {"params"}
    for name in sorted((set(metrics_a) | set(metrics_b)) - shown):
        row(name, metrics_a.get(name), metrics_b.get(name), name, numeric=True)
    row("device time", ta.device_seconds, tb.device_seconds, "device_seconds", numeric=True)
    return table


def _union(*lists: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(name for names in lists for name in names))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    return "-" if value is None else _short(value)


def _cell(name: str, value: Any) -> str:
    if not _is_number(value):
        return _text(value)
    if name == "device_seconds":
        return format_seconds(value)
    if isinstance(value, int):
        return f"{value:,}"
    return format_value(name, value)


def _difference(name: str, x: Any, y: Any) -> str:
    if not (_is_number(x) and _is_number(y)):
        return ""
    diff = y - x
    if diff == 0:
        return "0"
    if isinstance(diff, int):
        return f"{diff:+,}"
    return f"{diff:+.3g}s" if name == "device_seconds" else f"{diff:+.4g}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _module_text(module: dict[str, Any]) -> str:
    knobs = ", ".join(f"{k}={v}" for k, v in sorted(module.items()) if k != "kind")
    return f"{module['kind']}({knobs})"


def print_notes(space: Any, out: Console) -> None:
    """The space's notes (legal, probably unintended), one line each."""
    for note in space.notes:
        out.print(f"[yellow]note:[/] {space.path}: {escape(note)}", highlight=False,
                  soft_wrap=True)


# ------------------------------------------------------------------------------------------------
# comparing runs (`nas pareto RUN RUN ...`): nas.cli.fronts computes, these lay it out
# ------------------------------------------------------------------------------------------------

COMPARED_RUN_COLUMNS = ("run_hypervolume", "run_combined_front_share")


def _arrowed(objectives: Sequence[dict[str, str]]) -> str:
    return ", ".join(f"{o['name']} {'↑' if o['direction'] == 'maximize' else '↓'}"
                     for o in objectives)


def fronts_table(comparison: Any) -> Table:
    """Every run's front over the shared objectives, one section per run; ★ marks the members
    of the combined front (the front of all the runs' trials together)."""
    from nas.cli.untrusted import markup, shown_run, shown_trial

    names = comparison.names
    runs = [shown_run(f.run) for f in comparison.runs]
    objectives = [{**o, "name": markup(o["name"])} for o in comparison.objectives]
    title = (f"Pareto fronts of {', '.join(r.name for r in runs)} over "
             f"{_arrowed(objectives)}")
    left = [f"{run.name}: " + _arrowed([o for o in run.objectives
                                         if o["name"] in {markup(n) for n in f.left_out}])
            for run, f in zip(runs, comparison.runs, strict=True) if f.left_out]
    if left:
        title += f" (not shared, left out: {'; '.join(left)})"
    table = Table(title=title, title_justify="left", header_style="bold")
    for column, justify in (("run", "left"), ("trial", "right"), ("mixers", "left"),
                            ("d_model", "right"), ("layers", "right"), ("params", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for o in objectives:
        table.add_column(_arrowed([o]), justify="right")
    table.add_column("time", justify="right")
    table.add_column("combined", justify="center")
    shown = [[shown_trial(t) for t in front.front] for front in comparison.runs]
    for index, (run, members) in enumerate(zip(runs, shown, strict=True)):
        if index:
            table.add_section()
        for t in members:
            values, metrics = t.values or {}, t.metrics or {}
            table.add_row(
                run.name, str(t.number), t.short_form, str(t.d_model), str(t.n_layers),
                format_value("params", t.params),
                *(objective_cell(markup(n), values.get(markup(n)), metrics) for n in names),
                format_seconds(t.device_seconds) if t.device_seconds else "-",
                "★" if (index, t.number) in comparison.combined else "")
    notes = value_notes([t for members in shown for t in members], [markup(n) for n in names])
    table.caption = "\n".join(["★: on the combined front, the Pareto front of all these runs' "
                               "trials together", *notes])
    table.caption_justify = "left"
    return table


def runs_summary_table(comparison: Any) -> Table:
    """Per run: strategy, trials, device time, front size, hypervolume on the common reference,
    share of the combined front, device time to reach `reach` of the best and of its own
    hypervolume; the caption says how the hypervolume was measured."""
    from nas.cli.fronts import REFERENCE_RULE
    from nas.cli.untrusted import markup, shown_run

    reach = f"{comparison.reach:.0%}"
    table = Table(title="runs compared", title_justify="left", header_style="bold")
    for column in ("run", "strategy", "trials", "device time", "front", "hypervolume",
                   "combined front", f"to {reach} of best", f"to {reach} of own"):
        table.add_column(column, justify="left" if column in ("run", "strategy") else "right")
    for index, front in enumerate(comparison.runs):
        run = shown_run(front.run)
        to_best, to_own = comparison.hours_to_best(index), comparison.hours_to_own(index)
        table.add_row(
            run.name, run.strategy, f"{run.trials_complete} complete / {run.trials_total}",
            format_seconds(run.device_seconds), str(len(front.front)),
            f"{front.hypervolume:.4f}",
            f"{front.combined} of {comparison.combined_size} ({comparison.share(index):.0%})",
            "-" if to_best is None else format_seconds(3600 * to_best),
            "-" if to_own is None else format_seconds(3600 * to_own))
    reference = ", ".join(f"{markup(n)} {format_value(n, comparison.worst[n])}"
                          for n in comparison.names)
    table.caption = (f"hypervolume: over {', '.join(markup(n) for n in comparison.names)}, "
                     f"{REFERENCE_RULE} ({reference}); 1 would mean one trial best at "
                     f"everything.\nto {reach} of best / own: device time the run spent until "
                     f"its hypervolume first reached {reach} of the best run's final one / of "
                     "its own (-: never).")
    table.caption_justify = "left"
    return table


def comparison_to_dict(comparison: Any) -> dict[str, Any]:
    """JSON of a comparison: the shared objectives, the common reference (`worst`) and the
    other end of each scale (`best`), per run its summary and hypervolume curve, and the front
    members with their run."""
    from nas.cli.fronts import REFERENCE_RULE

    runs = []
    for index, front in enumerate(comparison.runs):
        to_best, to_own = comparison.hours_to_best(index), comparison.hours_to_own(index)
        run = front.run
        runs.append({
            "name": run.name, "strategy": run.strategy, "seed": run.seed,
            "space_path": run.space_path, "status": run.status,
            "trials_complete": run.trials_complete, "trials_total": run.trials_total,
            "device_seconds": run.device_seconds, "objectives_left_out": front.left_out,
            "front_size": len(front.front), "hypervolume": front.hypervolume,
            "combined_front": front.combined, "combined_front_share": comparison.share(index),
            "device_seconds_to_reach_best": None if to_best is None else 3600 * to_best,
            "device_seconds_to_reach_own": None if to_own is None else 3600 * to_own,
            "hypervolume_curve": [{"device_seconds": 3600 * h, "hypervolume": v}
                                  for h, v in front.progress],
        })
    members = [{"run": front.run.name, **t.to_dict(),
                "combined_front": (index, t.number) in comparison.combined}
               for index, front in enumerate(comparison.runs) for t in front.front]
    return {"objectives": comparison.objectives, "reference": comparison.worst,
            "best": comparison.best, "reference_rule": REFERENCE_RULE,
            "reach": comparison.reach, "combined_front_size": comparison.combined_size,
            "runs": runs, "front": members}


def comparison_columns(comparison: Any) -> list[str]:
    """The csv columns of a comparison: one row per front member, its run's summary repeated."""
    return ["run", "number", "short_form", "d_model", "n_layers", "params", *comparison.names,
            "device_seconds", "combined_front", "arch_hash", *COMPARED_RUN_COLUMNS]


def comparison_rows(comparison: Any) -> list[dict[str, Any]]:
    rows = []
    for index, front in enumerate(comparison.runs):
        for t in front.front:
            values = t.values or {}
            rows.append({
                "run": front.run.name, "number": t.number, "short_form": t.short_form,
                "d_model": t.d_model, "n_layers": t.n_layers, "params": t.params,
                **{n: values.get(n) for n in comparison.names},
                "device_seconds": t.device_seconds,
                "combined_front": (index, t.number) in comparison.combined,
                "arch_hash": t.arch_hash, "run_hypervolume": front.hypervolume,
                "run_combined_front_share": comparison.share(index)})
    return rows
