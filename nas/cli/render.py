"""Rendering store records for the terminal (rich tables) and for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from nas.orchestrator.budget import format_seconds
from nas.orchestrator.progress import format_value
from nas.store import RunRecord, TrialRecord
from nas.store.models import utcnow

FORMATS = ("table", "json")


def print_json(console: Console, data: Any) -> None:
    """Plain JSON on stdout (no colour codes, no wrapping), so programs can parse it."""
    console.file.write(json.dumps(data, indent=2, default=str) + "\n")


def trials_table(title: str, run: RunRecord, trials: Sequence[TrialRecord]) -> Table:
    """One row per trial: number, mixers per layer, width, depth, params, objectives."""
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
        values = t.values or {}
        state = {"COMPLETE": "[green]complete[/]", "FAIL": "[red]failed[/]",
                 "RUNNING": "[yellow]running[/]"}.get(t.state, f"[dim]{t.state.lower()}[/]")
        if t.duplicate_of is not None:
            state = f"[dim]= {t.duplicate_of}[/]"
        table.add_row(
            str(t.number), state, t.short_form, str(t.d_model), str(t.n_layers),
            format_value("params", t.params), *(format_value(n, values.get(n))
                                                for n in run.objective_names),
            format_seconds(t.device_seconds) if t.device_seconds else "-",
            "★" if t.pareto else "",
        )
    return table


def runs_table(runs: Sequence[RunRecord]) -> Table:
    table = Table(title="runs", title_justify="left", header_style="bold")
    for column in ("run", "status", "created (UTC)", "trials", "budget", "device time",
                   "wall time", "strategy", "objectives"):
        table.add_column(column)
    for run in runs:
        end = run.finished_at or utcnow()
        table.add_row(
            run.name, run.status, run.created_at.strftime("%Y-%m-%d %H:%M"),
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
    }


def trial_detail(run: RunRecord, trial: TrialRecord,
                 curve: Sequence[tuple[int, str, float]]) -> list[Any]:
    """Renderables for `nas show`: summary, layers, training recipe, metrics, curve, error."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("trial", f"{run.name}/{trial.number}")
    head.add_row("state", trial.state + (f" (same as trial {trial.duplicate_of})"
                                         if trial.duplicate_of is not None else ""))
    head.add_row("mixers", trial.short_form)
    head.add_row("arch_hash", trial.arch_hash)
    head.add_row("device", trial.device or "-")
    head.add_row("device time", format_seconds(trial.device_seconds))
    head.add_row("on front", "yes" if trial.pareto else "no")
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
            metrics.add_row(name, format_value(name, value))
        parts.append(metrics)
    losses = [(step, v) for step, name, v in curve if name == "train_loss"]
    if losses:
        picks = losses[:: max(1, len(losses) // 8)] + [losses[-1]]
        shown = " → ".join(f"{v:.3f}@{s}" for s, v in dict(picks).items())
        parts.append(f"[bold]train loss[/]  {shown}")
    if trial.error:
        parts.append(f"[bold red]error[/]\n{trial.error}")
    return parts


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _module_text(module: dict[str, Any]) -> str:
    knobs = ", ".join(f"{k}={v}" for k, v in sorted(module.items()) if k != "kind")
    return f"{module['kind']}({knobs})"
