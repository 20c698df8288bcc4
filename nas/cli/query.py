"""Commands that read results and print them: `nas runs`, `trials`, `pareto`, `show` and
`compare`, each as a table, JSON or csv (`--format`). `pareto` and `compare` given several runs
compare them (nas.cli.fronts).

They only read (the store is opened with `open_store`, which never creates anything) and stay
light: no torch, Optuna, numpy or pandas is imported (tests/cli/test_import_hygiene.py). Strings
from the database pass through nas.cli.untrusted before a table or csv shows them.
"""

from __future__ import annotations

from typing import Any

import typer

from nas.cli.common import (
    QueryFormatOpt,
    StorageOpt,
    check_format,
    console,
    open_store,
    trial_ref,
    user_errors,
)
from nas.cli.fronts import REACH
from nas.errors import NasError
from nas.store import TRIAL_STATES


@user_errors
def runs(storage: str = StorageOpt, fmt: str = QueryFormatOpt) -> None:
    """List the runs in the database."""
    from nas.cli.render import (
        FORMATS,
        RUN_COLUMNS,
        print_csv,
        print_json,
        run_row,
        run_to_dict,
        runs_table,
    )
    from nas.cli.untrusted import csv_cells, shown_run

    check_format(fmt, FORMATS)
    records = open_store(storage).runs()
    if fmt == "json":
        print_json(console, [run_to_dict(r) for r in records])
    elif fmt == "csv":
        print_csv(console, RUN_COLUMNS, [csv_cells(run_row(r)) for r in records])
    else:
        console.print(runs_table([shown_run(r) for r in records]))


@user_errors
def trials(
    run: str = typer.Argument(..., help="Run name (or id)."),
    storage: str = StorageOpt,
    fmt: str = QueryFormatOpt,
    state: str = typer.Option(None, "--state", help="Only trials in this state, e.g. COMPLETE."),
    sort: str = typer.Option(None, "--sort", help="Order by a column, objective or metric, e.g. "
                             "accuracy, latency_ms, params, number; -KEY for descending. Trials "
                             "without that value come last."),
    limit: int = typer.Option(None, "--limit", min=0, help="Only the first N (after sorting)."),
    where: str = typer.Option(None, "--where", help="Only trials satisfying a condition over "
                              "objectives, metrics and columns, e.g. 'accuracy > 0.9 and "
                              "latency_ms < 2' (units allowed: params < 100k)."),
) -> None:
    """List the trials of RUN."""
    _list_trials(run, storage, fmt, front_only=False, state=state, sort=sort, limit=limit,
                 where=where)


ReachOpt = typer.Option(None, "--reach", min=0.0, max=1.0, help="Comparing runs: count the "
                        "device-hours each took to reach this share of a final hypervolume "
                        f"(default {REACH}).")


@user_errors
def pareto(runs: list[str] = typer.Argument(..., metavar="RUN",
                                            help="Run name (or id); several to compare them."),
           storage: str = StorageOpt, fmt: str = QueryFormatOpt,
           reach: float = ReachOpt) -> None:
    """The Pareto front of RUN over its objectives, then (≈) the trials within measurement noise
    of it: dominated, but not beyond their latency spreads or replicate intervals. With several
    runs: their fronts over the objectives they share, side by side, and per run its
    hypervolume on one common reference point, its share of the combined front and the
    device-hours it took to reach --reach of the best final hypervolume and of its own."""
    if len(runs) > 1:
        compare_runs(runs, storage, fmt, reach)
        return
    if reach is not None:
        raise NasError("--reach applies when comparing runs: name two or more")
    _list_trials(runs[0], storage, fmt, front_only=True)


def compare_runs(refs: list[str], storage: str | None, fmt: str, reach: float | None) -> None:
    """Print the comparison of runs `refs` (`nas pareto RUN RUN …`, `nas compare RUN RUN …`)."""
    from nas.cli.fronts import load_comparison
    from nas.cli.render import (
        FORMATS,
        comparison_columns,
        comparison_rows,
        comparison_to_dict,
        fronts_table,
        print_csv,
        print_json,
        runs_summary_table,
    )

    check_format(fmt, FORMATS)
    comparison = load_comparison(open_store(storage), refs, REACH if reach is None else reach)
    if fmt == "json":
        print_json(console, comparison_to_dict(comparison))
    elif fmt == "csv":
        from nas.cli.untrusted import csv_cells

        print_csv(console, comparison_columns(comparison),
                  [csv_cells(row) for row in comparison_rows(comparison)])
    else:
        console.print(fronts_table(comparison))
        console.print(runs_summary_table(comparison))


def _list_trials(run_ref: str, storage: str | None, fmt: str, front_only: bool,
                 state: str | None = None, sort: str | None = None,
                 limit: int | None = None, where: str | None = None) -> None:
    from nas.cli.render import (
        FORMATS,
        print_csv,
        print_json,
        trial_columns,
        trial_row,
        trials_table,
    )

    check_format(fmt, FORMATS)
    if state and state.upper() not in TRIAL_STATES:
        raise NasError(f"unknown --state {state!r}; use one of {', '.join(TRIAL_STATES)}")
    store = open_store(storage)
    run = store.run(run_ref)
    records = store.pareto(run.id) if front_only else store.trials(
        run.id, states=[state.upper()] if state else None)
    near: list[Any] = []
    if front_only:  # the front, then the trials whose place off it may be measurement noise
        from nas.cli.render import near_front

        near = near_front(run, store.trials(run.id, states=["COMPLETE"]))
        records = records + near
    if where:
        records = filter_trials(run, records, where)
    if sort:
        records = sort_trials(run, records, sort)
    if limit is not None:
        records = records[:limit]
    near_numbers = {t.number for t in near}
    if fmt == "json":
        print_json(console, [{**t.to_dict(), **({"within_noise": True} if t.number in
                                                 near_numbers else {})} for t in records])
        return
    from nas.cli.untrusted import csv_cells, markup, shown_run, shown_trial

    if fmt == "csv":
        columns = trial_columns(run) + (["within_noise"] if front_only else [])
        rows = [csv_cells({**trial_row(run, t), "within_noise": t.number in near_numbers})
                for t in records]
        print_csv(console, columns, rows)
        return
    on_front = len(records) - len(near)
    shown = shown_run(run)
    title = (f"Pareto front of {shown.name} ({on_front} trials"
             + (f"; ≈ {len(near)} more within measurement noise" if near else "") + ")"
             if front_only else f"trials of {shown.name}" + (f", by {markup(sort)}" if sort
                                                            else ""))
    console.print(trials_table(title, shown, [shown_trial(t) for t in records], near_numbers))


def sort_trials(run: Any, records: list[Any], key: str) -> list[Any]:
    """`records` ordered by `key` (a trial column, objective or metric; `-key` descending),
    trials without a value for it last, ties in trial order. NasError for an unknown key."""
    from nas.cli.render import trial_columns, trial_row

    descending = key.startswith("-")
    name = key[1:] if descending else key
    metric_names = sorted({m for t in records for m in (t.metrics or {})})
    valid = list(dict.fromkeys([*trial_columns(run), *metric_names]))
    if name not in valid:
        raise NasError(f"unknown --sort key {name!r}; use one of {', '.join(valid)} "
                       "(prefix - for descending)")

    def value(trial: Any) -> Any:
        row = trial_row(run, trial)
        return row[name] if name in row else (trial.metrics or {}).get(name)

    present = [t for t in records if value(t) is not None]
    missing = [t for t in records if value(t) is None]
    return sorted(present, key=value, reverse=descending) + missing


YAML_BOOLEANS = {"true": True, "false": False}  # `pareto == true` as YAML spells it


def filter_trials(run: Any, records: list[Any], where: str) -> list[Any]:
    """The trials for which the condition `where` holds (parsed by nas.expr, never eval'ed).
    A trial lacking a value the condition names (a failed trial has no accuracy) is left out;
    a name no trial has is an error listing the names there are."""
    from nas.cli.render import trial_columns, trial_row
    from nas.expr import ExprError, parse

    try:
        condition = parse(where, strings=True)
    except ExprError as exc:
        raise NasError(f"--where: {exc}") from None
    if condition.calls:
        raise NasError(f"--where: {condition.calls[0].text} is not available here: --where "
                       "compares the stored columns and metrics (constraints' functions such as "
                       "count() apply to a space's candidates), e.g. \"short_form == 'C-A'\"")
    if not condition.is_condition:
        raise NasError(f"--where needs a condition such as 'accuracy > 0.9', got {where!r}")
    envs = [{**(t.metrics or {}), **trial_row(run, t), **YAML_BOOLEANS} for t in records]
    known = set(trial_columns(run)) | {m for env in envs for m in env}
    unknown = [n for n in condition.names if n not in known]
    if unknown:
        raise NasError(f"--where: unknown name {unknown[0]!r}; use one of "
                       f"{', '.join(sorted(known))}")
    kept = []
    for trial, env in zip(records, envs, strict=True):
        if any(env.get(n) is None for n in condition.names):
            continue
        try:
            if condition.evaluate(env):
                kept.append(trial)
        except ExprError as exc:
            raise NasError(f"--where: {exc}") from None
    return kept


@user_errors
def show(ref: str = typer.Argument(..., metavar="RUN/NUMBER", help="e.g. quickstart-1/7"),
         storage: str = StorageOpt, fmt: str = QueryFormatOpt) -> None:
    """One trial: its architecture, training recipe, metrics, curve and error."""
    from nas.cli.render import FORMATS, print_csv, print_json, trial_detail, trial_row_with_metrics
    from nas.cli.untrusted import checked_spec, csv_cells, markup, shown_run, shown_trial

    check_format(fmt, FORMATS)
    store = open_store(storage)
    run, trial = trial_ref(store, ref)
    if fmt == "csv":
        row = csv_cells(trial_row_with_metrics(run, trial))
        print_csv(console, list(row), [row])
        return
    curve = store.curve(run.id, trial.number)
    if fmt == "json":
        print_json(console, {**trial.to_dict(), "run": run.name,
                             "curve": [{"step": s, "name": n, "value": v} for s, n, v in curve]})
        return
    shown_curve = [(step, markup(name), value) for step, name, value in curve]
    for part in trial_detail(shown_run(run), shown_trial(checked_spec(run, trial)), shown_curve):
        console.print(part)


@user_errors
def compare(
    refs: list[str] = typer.Argument(..., metavar="RUN/A RUN/B | RUN RUN",
                                     help="Two trials (e.g. quickstart-1/3 quickstart-2/5), or "
                                     "two or more runs."),
    storage: str = StorageOpt,
    fmt: str = QueryFormatOpt,
    reach: float = ReachOpt,
) -> None:
    """Two trials side by side: layers, width, params, recipe, objectives, metrics, B − A. Given
    runs (no /NUMBER), their fronts compared, as `nas pareto RUN RUN ...` does."""
    if all("/" not in ref for ref in refs):
        if len(refs) < 2:
            raise NasError("compare takes two trials (RUN/A RUN/B) or two or more runs, got "
                           f"one: {refs[0]!r}")
        compare_runs(refs, storage, fmt, reach)
        return
    if len(refs) != 2:
        count = f"{len(refs)} reference{'s' if len(refs) != 1 else ''}"
        raise NasError(f"compare takes two trials (RUN/A RUN/B), got {count}; to compare runs, "
                       "name them without /NUMBER")
    if reach is not None:
        raise NasError("--reach applies when comparing runs, not trials")
    _compare_trials(*refs, storage, fmt)


def _compare_trials(a: str, b: str, storage: str | None, fmt: str) -> None:
    from nas.cli.render import (
        FORMATS,
        compare_table,
        print_csv,
        print_json,
        trial_row_with_metrics,
    )

    check_format(fmt, FORMATS)
    store = open_store(storage)
    run_a, trial_a = trial_ref(store, a)
    run_b, trial_b = trial_ref(store, b)
    from nas.cli.untrusted import checked_spec, csv_cells, shown_run, shown_trial

    if fmt == "json":
        print_json(console, {"a": {**trial_a.to_dict(), "run": run_a.name},
                             "b": {**trial_b.to_dict(), "run": run_b.name}})
    elif fmt == "csv":
        rows = [csv_cells({"trial": label, "run": run.name, **trial_row_with_metrics(run, trial)})
                for label, run, trial in (("a", run_a, trial_a), ("b", run_b, trial_b))]
        print_csv(console, list(dict.fromkeys(k for row in rows for k in row)), rows)
    else:
        console.print(compare_table(
            (shown_run(run_a), shown_trial(checked_spec(run_a, trial_a))),
            (shown_run(run_b), shown_trial(checked_spec(run_b, trial_b)))))
