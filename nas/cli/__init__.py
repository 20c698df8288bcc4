"""The `nas` command line (typer + rich).

Errors a user can cause (a bad space file, budget, storage URL or run name) print as one line on
stderr with exit code 2 — never a traceback. Query commands take `--format table|json|csv`.
Storage: `--storage URL`, else $NAS_STORAGE, else (for `search`) the space's `storage:`, else
sqlite:///nas.db in the working directory.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from nas.errors import NasError
from nas.store import DEFAULT_URL, TRIAL_STATES, Store
from nas.store.engine import database_location

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="nas",
    help="Declarative architecture search for hybrid sequence models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide when piped (logs, CI): rich would otherwise wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

StorageOpt = typer.Option(None, "--storage", help="Database URL (default: $NAS_STORAGE or "
                          f"{DEFAULT_URL}).")
WorkersOpt = typer.Option(None, "--workers", "-w", min=1, help="Trials run at once (default: "
                          "one worker per GPU, 1 on a CPU machine; with Ray, the cluster's size).")
ThreadsOpt = typer.Option(None, "--threads", "-t", min=1, help="Torch CPU threads per local "
                          "worker (default: OMP_NUM_THREADS if set, else cores / workers).")
FormatOpt = typer.Option("table", "--format", "-f", help="Output format: table or json.")
QueryFormatOpt = typer.Option("table", "--format", "-f", help="Output format: table, json or "
                              "csv.")


MAX_MESSAGE = 2000  # characters of one error line: a message may quote data from a database


def user_errors(fn: F) -> F:
    """Print NasError, a database that cannot be read (damaged, locked, unreachable: sqlalchemy's
    DatabaseError) and a closed pipe as one line, and exit 2 (0 for the pipe). The line never
    carries markup, control characters or more than MAX_MESSAGE characters, whatever data it
    quotes."""
    from sqlalchemy.exc import DatabaseError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NasError as exc:
            fail(str(exc))
        except DatabaseError as exc:
            fail(database_failure(exc, kwargs))
        except BrokenPipeError:  # e.g. `nas trials RUN | head`
            sys.stderr.close()
            raise typer.Exit(0) from None

    return wrapper  # type: ignore[return-value]


class StoreWarnings(logging.Handler):
    """Shows the store's warnings (an artifact row it will not follow, say) as plain lines on
    the stderr of the moment, one per warning, never more than MAX_MESSAGE characters."""

    def emit(self, record: logging.LogRecord) -> None:
        from nas.cli.untrusted import plain

        sys.stderr.write(plain(record.getMessage(), MAX_MESSAGE) + "\n")


if not any(isinstance(h, StoreWarnings) for h in logging.getLogger("nas.store").handlers):
    logging.getLogger("nas.store").addHandler(StoreWarnings(logging.WARNING))


def fail(message: str) -> None:
    """Print `message` as the one error line and exit 2."""
    from nas.cli.untrusted import plain

    errors.print(f"[bold red]error:[/] {escape(plain(message, MAX_MESSAGE))}", highlight=False,
                 soft_wrap=True)
    raise typer.Exit(2) from None


def database_failure(exc: Any, options: dict[str, Any]) -> str:
    """What went wrong reading the database of a command (its --storage, unless the command
    may take it from a space file and none was given) and what to do about it."""
    from nas.cli.untrusted import plain

    reason = plain(getattr(exc, "orig", None) or exc, 200)
    url = None
    if "storage" in options and (options["storage"] or "space" not in options):
        url = resolve_storage(options["storage"])
    where = f"the database {database_location(url)}" if url else "the database"
    lowered = reason.lower()
    if "locked" in lowered or "busy" in lowered:
        fix = "another process is writing it; wait for it to finish and try again"
    elif "readonly" in lowered or "read-only" in lowered:
        fix = "it is read-only here; copy it somewhere writable, or check its permissions"
    elif url is not None and url.startswith("sqlite"):
        name = database_location(url)
        fix = (f"restore it from a backup, or recover what is readable with `sqlite3 {name} "
               f".recover | sqlite3 recovered.db` and pass --storage sqlite:///recovered.db")
    else:
        fix = "check that the server is up and the URL is right, or restore it from a backup"
    return f"cannot read {where}: {reason} — fix: {fix}"


def resolve_storage(storage: str | None, from_space: str | None = None) -> str:
    return storage or os.environ.get("NAS_STORAGE") or from_space or DEFAULT_URL


def check_format(fmt: str, formats: Sequence[str] | None = None) -> str:
    """`fmt` if it is one of `formats`: the commands that can write csv pass render.FORMATS;
    the default is table and json (e.g. `space sample`, which has no csv form)."""
    from nas.cli.render import FORMATS

    allowed = tuple(formats) if formats is not None else tuple(f for f in FORMATS if f != "csv")
    if fmt not in allowed:
        raise NasError(f"unknown --format {fmt!r}; use one of {', '.join(allowed)}")
    return fmt


RayAddressOpt = typer.Option(
    None, "--ray-address", envvar="NAS_RAY_ADDRESS",
    help="Run trials on a Ray cluster: auto, HOST:6379, ray://HOST:10001 or local "
    "(default: the space's search.ray_address; none: local worker processes).")
CpusPerTrialOpt = typer.Option(None, "--num-cpus-per-trial", envvar="NAS_RAY_CPUS_PER_TRIAL",
                               help="Ray only: CPUs per trial (default: the space's, else 1).")
GpusPerTrialOpt = typer.Option(None, "--num-gpus-per-trial", envvar="NAS_RAY_GPUS_PER_TRIAL",
                               help="Ray only: GPUs per trial (default: the space's, else 0).")
ProgressOpt = typer.Option(
    None, "--progress", help="How progress is shown: rich (a live panel), quiet (a plain line "
    "per trial that ends, then a summary) or jsonl (one JSON object per event); default: rich "
    "on a terminal, else quiet.")


AllowCodeOpt = typer.Option(
    False, "--allow-code", envvar="NAS_ALLOW_CODE", help="Import and run the user code the "
    "space names (a python task's entrypoint, a mixer given by import path). Off by default: a "
    "space file may come from someone else. Also NAS_ALLOW_CODE=1.")


def progress_reporter(mode: str | None) -> Any:
    """The Reporter for --progress (see nas.orchestrator.progress.make_reporter)."""
    from nas.orchestrator.progress import PROGRESS_MODES, make_reporter

    if mode is not None and mode not in PROGRESS_MODES:
        raise NasError(f"unknown --progress {mode!r}; use one of {', '.join(PROGRESS_MODES)}")
    return make_reporter(mode, sys.stdout, console)


# ------------------------------------------------------------------------------------------------
# search and validate
# ------------------------------------------------------------------------------------------------


@app.command()
@user_errors
def search(
    space: Path = typer.Argument(..., help="The search-space YAML file."),
    budget: str = typer.Option(None, "--budget", "-b", help="100gpuh, 2cpuh, 30m, 2h or 50trials "
                               "(default: the space's `budget:`)."),
    storage: str = StorageOpt,
    name: str = typer.Option(None, "--name", help="Run name (default: SPACE_NAME-N)."),
    seed: int = typer.Option(None, "--seed", help="Overrides the space's search.seed."),
    workers: int | None = WorkersOpt,
    ray_address: str = RayAddressOpt,
    cpus_per_trial: float = CpusPerTrialOpt,
    gpus_per_trial: float = GpusPerTrialOpt,
    threads: int | None = ThreadsOpt,
    progress: str = ProgressOpt,
    allow_code: bool = AllowCodeOpt,
) -> None:
    """Search SPACE until the budget is spent; print the Pareto front."""
    from nas.budget import parse_budget
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import load
    from nas.searchspace.loader import require_trusted

    reporter = progress_reporter(progress)
    compiled = load(space, allow_code=allow_code)
    require_trusted(compiled)  # before anything runs or is written
    budget_text = budget or compiled.config.budget
    if not budget_text:
        raise NasError("no budget: pass --budget (e.g. 30m, 2cpuh, 20trials) or set `budget:` "
                       f"in {space}")
    parsed = parse_budget(budget_text)
    print_notes(compiled, errors if progress == "jsonl" else console)  # stdout: JSON lines only
    print_busy(errors)
    url = resolve_storage(storage, compiled.config.storage)
    if parsed.device_kind == "gpu":
        import torch

        if not torch.cuda.is_available():
            out = errors if progress == "jsonl" else console  # stdout: JSON lines only
            out.print("[yellow]note:[/] no GPU here; the time of CPU workers is charged against "
                      "the gpuh budget")
    options = SearchOptions(budget=parsed, storage=url, name=name, seed=seed,
                            workers=workers, threads=threads, ray_address=ray_address,
                            num_cpus_per_trial=cpus_per_trial, num_gpus_per_trial=gpus_per_trial,
                            allow_code=allow_code)
    _report_outcome(run_search(compiled, options, reporter), url, progress)


@app.command()
@user_errors
def resume(
    run: str = typer.Argument(..., help="The run to take up again (name or id)."),
    budget: str = typer.Option(None, "--budget", "-b", help="A new total budget for the run "
                               "(default: its own). Work already done counts against it."),
    storage: str = StorageOpt,
    workers: int | None = WorkersOpt,
    ray_address: str = RayAddressOpt,
    cpus_per_trial: float = CpusPerTrialOpt,
    gpus_per_trial: float = GpusPerTrialOpt,
    threads: int | None = ThreadsOpt,
    progress: str = ProgressOpt,
    allow_code: bool = AllowCodeOpt,
) -> None:
    """Continue a stopped, interrupted or crashed run until its budget is spent."""
    from nas.budget import parse_budget
    from nas.orchestrator.search import SearchOptions, resume_search

    reporter = progress_reporter(progress)
    url = resolve_storage(storage)
    print_busy(errors)
    options = SearchOptions(budget=parse_budget(budget) if budget else None, storage=url,
                            workers=workers, threads=threads, ray_address=ray_address,
                            num_cpus_per_trial=cpus_per_trial, num_gpus_per_trial=gpus_per_trial,
                            allow_code=allow_code)
    _report_outcome(resume_search(run, options, reporter), url, progress)


def print_busy(out: Console) -> None:
    """One warning line when other processes keep this machine's cores busy (a search run
    then would be slower and its timings contended), read over a 0.3 s probe."""
    from nas.evaluate.contention import busy_warning

    warning = busy_warning()
    if warning is not None:
        head, _, rest = warning.partition(": ")
        out.print(f"[yellow]{head}:[/] {rest}", highlight=False, soft_wrap=True)


def print_notes(space: Any, out: Console) -> None:
    """The space's notes (legal, probably unintended), one line each."""
    for note in space.notes:
        out.print(f"[yellow]note:[/] {space.path}: {escape(note)}", highlight=False,
                  soft_wrap=True)


def _report_outcome(outcome: Any, url: str, progress: str | None = None) -> None:
    """The end of a search: how it stopped, the front, where the results are. With jsonl
    progress the reporter's `stop` event said it all: stdout stays JSON lines only. Exit
    status 1 unless the search finished."""
    from nas.cli.render import trials_table

    if progress == "jsonl":
        if outcome.status != "finished":
            raise typer.Exit(1)
        return
    run = Store(url).run(outcome.run_name)
    if progress != "quiet" and not (progress is None and not sys.stdout.isatty()):
        # (quiet, chosen or the default off a terminal: its last line said how it ended)
        console.print(f"\n[bold]{outcome.status}[/]: {escape(outcome.message)}")
    console.print(trials_table(f"Pareto front of {run.name} ({len(outcome.front)} of "
                               f"{run.trials_complete} completed trials)", run, outcome.front))
    from nas.evaluate.ranking import describe_agreement, proxy_agreement, proxy_names
    from nas.store import COMPLETE

    complete = Store(url).trials(run.id, states=[COMPLETE])
    for row in proxy_agreement(complete, proxy_names(complete)):
        console.print(describe_agreement(row), highlight=False)
    console.print(f"database: {database_location(url)}")
    console.print(f"explore:  nas trials {run.name} --storage {url}    "
                  f"nas show {run.name}/<trial> --storage {url}")
    if outcome.status != "finished":
        console.print(f"resume:   nas resume {run.name} --storage {url}")
        raise typer.Exit(1)


@app.command()
@user_errors
def validate(space: Path = typer.Argument(..., help="The search-space YAML file.")) -> None:
    """Check SPACE and summarize its decisions, without running anything: user code it names
    (a python task, a mixer by import path) is read, never imported."""
    from nas.searchspace import load

    compiled = load(space)
    console.print(f"[green]ok[/]: {space} — space [bold]{compiled.name}[/], task "
                  f"{compiled.task['kind']}, strategy {compiled.strategy}")
    print_notes(compiled, console)
    if compiled.code_refusal is not None:  # read, not run: say what a search will need
        refusal = compiled.code_refusal
        console.print(f"[yellow]note:[/] {escape(refusal.key)}: not run by validate; "
                      f"{escape(refusal.fix)} to search", highlight=False, soft_wrap=True)
    for name in compiled.order:
        domain = compiled.domain(name)
        conditions = compiled.describe_when(name)
        when = f"  [dim](when {conditions})[/]" if conditions else ""
        console.print(f"  {name}: {_domain_text(domain)}{when}", highlight=False)
    objectives = ", ".join(f"{o.name} ({o.direction})" for o in compiled.objectives)
    console.print(f"  objectives: {objectives}")
    for constraint in compiled.config.constraints:
        console.print(f"  constraint: {constraint}", highlight=False)


def _domain_text(domain: Any) -> str:
    from nas.searchspace.domains import Choice, Fixed, IntRange

    if hasattr(domain, "describe"):
        return domain.describe()
    if isinstance(domain, Fixed):
        return repr(domain.value)
    if isinstance(domain, Choice):
        return "choice " + repr(list(domain.options))
    if isinstance(domain, IntRange):
        return f"int {domain.low}..{domain.high}" + (f" step {domain.step}" if domain.step > 1
                                                     else "")
    return f"{'log' if domain.log else ''}uniform [{domain.low:g}, {domain.high:g}]"


# ------------------------------------------------------------------------------------------------
# queries
# ------------------------------------------------------------------------------------------------


@app.command()
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
    records = Store(resolve_storage(storage), create=False).runs()
    if fmt == "json":
        print_json(console, [run_to_dict(r) for r in records])
    elif fmt == "csv":
        print_csv(console, RUN_COLUMNS, [csv_cells(run_row(r)) for r in records])
    else:
        console.print(runs_table([shown_run(r) for r in records]))


@app.command()
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


@app.command()
@user_errors
def pareto(run: str = typer.Argument(..., help="Run name (or id)."),
           storage: str = StorageOpt, fmt: str = QueryFormatOpt) -> None:
    """The Pareto front of RUN over its objectives, then (≈) the trials within measurement noise
    of it: dominated, but not beyond their latency spreads or replicate intervals."""
    _list_trials(run, storage, fmt, front_only=True)


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
    store = Store(resolve_storage(storage), create=False)
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


MAX_TRIAL_DIGITS = 19  # 2**63 - 1, the largest trial number a database holds, has 19 digits


def _trial_ref(store: Store, ref: str) -> tuple[Any, Any]:
    """(run, trial) for RUN/NUMBER; NasError if it is malformed or names nothing. NUMBER is
    ASCII digits only ('²' and '٣' pass str.isdigit, but are no trial numbers); a number no
    database can hold is simply a trial the run does not have."""
    from nas.store.untrusted import shown

    run_ref, _, number = ref.rpartition("/")
    if not run_ref or not (number.isascii() and number.isdigit()):
        raise NasError(f"expected RUN/NUMBER such as quickstart-1/3, got {shown(ref)}")
    run = store.run(run_ref)
    if len(number.lstrip("0")) > MAX_TRIAL_DIGITS:  # int() of thousands of digits is refused
        label = number if len(number) <= 30 else number[:29] + "…"
        raise NasError(f"no trial {label} in run {shown(run.name)}; "
                       "`nas trials RUN` lists the trials of a run")
    return run, store.trial(run.id, int(number))


@app.command()
@user_errors
def show(ref: str = typer.Argument(..., metavar="RUN/NUMBER", help="e.g. quickstart-1/7"),
         storage: str = StorageOpt, fmt: str = QueryFormatOpt) -> None:
    """One trial: its architecture, training recipe, metrics, curve and error."""
    from nas.cli.render import FORMATS, print_csv, print_json, trial_detail, trial_row_with_metrics
    from nas.cli.untrusted import checked_spec, csv_cells, markup, shown_run, shown_trial

    check_format(fmt, FORMATS)
    store = Store(resolve_storage(storage), create=False)
    run, trial = _trial_ref(store, ref)
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


@app.command()
@user_errors
def compare(
    a: str = typer.Argument(..., metavar="RUN/A", help="The first trial, e.g. quickstart-1/3."),
    b: str = typer.Argument(..., metavar="RUN/B", help="The second, of the same run or another."),
    storage: str = StorageOpt,
    fmt: str = QueryFormatOpt,
) -> None:
    """Two trials side by side: layers, width, params, recipe, objectives, metrics, B − A."""
    from nas.cli.render import (
        FORMATS,
        compare_table,
        print_csv,
        print_json,
        trial_row_with_metrics,
    )

    check_format(fmt, FORMATS)
    store = Store(resolve_storage(storage), create=False)
    run_a, trial_a = _trial_ref(store, a)
    run_b, trial_b = _trial_ref(store, b)
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


@app.command("rm")
@user_errors
def rm(
    run: str = typer.Argument(..., help="Run name (or id)."),
    storage: str = StorageOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete RUN: its trials, curves, kept weights, budget ledger and Optuna study."""
    url = resolve_storage(storage)
    store = Store(url, create=False)
    record = store.run(run)
    _refuse_if_searching(record)
    from nas.cli.untrusted import markup, plain

    if not yes:
        question = (f"Delete run {plain(repr(record.name))} with its {record.trials_total} "
                    f"trials from {database_location(url)}?")
        try:
            confirmed = typer.confirm(question, default=False)
        except typer.Abort:  # end of input
            confirmed = False
        if not confirmed:
            errors.print("aborted: nothing deleted", highlight=False)
            raise typer.Exit(1)
    # The study first: if the store's delete then failed, `nas rm` again finishes the job.
    _delete_study(record.name, url)
    store.delete_run(record.id)
    console.print(f"deleted run [bold]{markup(record.name)}[/] ({record.trials_total} trials)",
                  highlight=False)


def _refuse_if_searching(run: Any) -> None:
    """A run whose search driver is alive on this host is not deleted under its feet."""
    import socket

    if run.status != "running" or not run.driver_pid or run.host != socket.gethostname():
        return
    try:
        os.kill(run.driver_pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise NasError(f"run {run.name!r} is still being searched by process {run.driver_pid}; "
                   "stop it (Ctrl-C) before deleting it")


def _delete_study(name: str, url: str) -> None:
    """Delete the run's Optuna study from `url`; a study that is not there is fine."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna.delete_study(study_name=name, storage=url)
    except KeyError:
        pass


# ------------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------------


@app.command()
@user_errors
def export(
    ref: str = typer.Argument(..., metavar="RUN/NUMBER", help="e.g. quickstart-1/7"),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (created; it must be "
                             "new or empty unless --force)."),
    storage: str = StorageOpt,
    force: bool = typer.Option(False, "--force", "--overwrite", help="Write into a folder that "
                               "already holds files, replacing an earlier export there."),
) -> None:
    """Write a trained trial to a folder: arch.json, model.safetensors, metrics.json and a
    model.py that rebuilds it with only PyTorch."""
    from nas.cli.untrusted import markup
    from nas.export import export_trial
    from nas.export.exporter import FILES
    from nas.store.untrusted import shown

    store = Store(resolve_storage(storage), create=False)
    run, trial = _trial_ref(store, ref)
    try:
        prepare_out(out, force, FILES)
    except OSError as exc:  # a name too long, a folder we may not read, ...
        raise NasError(f"--out {shown(str(out))}: {exc.strerror or exc}; choose "
                       "another folder") from None
    result = export_trial(store, run.id, trial.number, out)
    source = "" if result.source == trial.number else f" (weights of trial {result.source}, "
    source += "which it duplicates)" if source else ""
    console.print(f"exported {markup(run.name)}/{trial.number}{source} to {markup(out)}: "
                  f"{', '.join(p.name for p in result.files)}", highlight=False)
    console.print(f"load it:  nas.load_model({markup(repr(str(out)))})   or, with only torch:  "
                  f"python {markup(out / 'model.py')}", highlight=False)


def prepare_out(out: Path, force: bool, names: Sequence[str]) -> None:
    """Make sure writing `names` into the folder `out` loses nothing unasked and writes nowhere
    else: NasError when `out` is a file, or a folder already holding something and `force` is
    off. With `force`, any of `names` there that is a link (or not a plain file) is removed
    first, so the writes that follow land in `out` itself, never where a link points."""
    from nas.store.untrusted import shown

    if out.is_symlink() and not out.exists():
        raise NasError(f"--out {shown(str(out))} is a broken link; choose a new folder")
    if out.exists() and not out.is_dir():
        raise NasError(f"--out {shown(str(out))} is a file, not a folder; choose a new folder")
    if not out.is_dir():
        return
    if any(out.iterdir()) and not force:
        raise NasError(f"--out {shown(str(out))} already holds files; choose a new folder, or "
                       "pass --force to replace what is there")
    for name in names:
        target = out / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            if target.is_dir() and not target.is_symlink():
                raise NasError(f"--out {shown(str(out))} holds a folder named {name}; "
                               "choose a new folder")
            target.unlink()


@app.command()
@user_errors
def report(
    run: str = typer.Argument(..., help="Run name (or id)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (created)."),
    storage: str = StorageOpt,
) -> None:
    """A run on one page: report.html (self-contained) and report.md, with the front, the
    figure, the budget, the failures and the space."""
    from nas.cli.report import write_report

    paths = write_report(Store(resolve_storage(storage), create=False), run, out)
    console.print(f"wrote {', '.join(str(p) for p in paths)}", highlight=False)


# ------------------------------------------------------------------------------------------------
# blocks
# ------------------------------------------------------------------------------------------------

blocks_app = typer.Typer(name="blocks", help="The registered token and channel mixers.",
                         no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")
BLOCK_ROLES = ("token_mixer", "channel_mixer")


@blocks_app.command("list")
@user_errors
def blocks_list(
    pattern: str = typer.Argument("*", help="A glob over block names (e.g. 'att*'), or a word "
                                  "found anywhere in one."),
    role: str = typer.Option(None, "--role", help="Only token_mixer or channel_mixer blocks."),
) -> None:
    """List the registered blocks matching PATTERN, with their knobs."""
    from rich.table import Table

    from nas.blocks import get_block, list_blocks

    if role is not None and role not in BLOCK_ROLES:
        raise NasError(f"unknown --role {role!r}; use one of {', '.join(BLOCK_ROLES)}")
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"  # a plain word matches anywhere in the name
    names = list_blocks(pattern, role=role)  # type: ignore[arg-type]
    if not names:
        known = ", ".join(list_blocks(role=role))  # type: ignore[arg-type]
        raise NasError(f"no {role or 'block'} matches {pattern!r}; known: {known}")
    table = Table(title=f"blocks matching {pattern!r}", title_justify="left",
                  header_style="bold", show_lines=True)
    for column in ("name", "role", "knobs (type = default, allowed)", "what it is"):
        table.add_column(column)
    for name in names:
        info = get_block(name)
        knobs = []
        for knob in info.knobs:
            text = f"{knob.name}: {knob.type.__name__} = {knob.default!r}"
            if knob.choices is not None:
                text += " {" + ", ".join(map(str, knob.choices)) + "}"
            if knob.minimum is not None:
                text += f" (>= {knob.minimum:g})"
            knobs.append(text)
        table.add_row(name, info.role, "\n".join(knobs) or "(none)", info.doc)
    console.print(table)


# ------------------------------------------------------------------------------------------------
# space
# ------------------------------------------------------------------------------------------------

space_app = typer.Typer(name="space", help="Inspect a search space: its decisions, its size, "
                        "samples from it.", no_args_is_help=True)
app.add_typer(space_app, name="space")


@space_app.command("show")
@user_errors
def space_show(
    space: Path = typer.Argument(..., help="The search-space YAML file."),
    limit: int = typer.Option(200_000, "--limit", min=0, help="Enumerate at most this many "
                              "assignments to count the distinct architectures."),
) -> None:
    """The decision DAG of SPACE as a tree, and how many distinct architectures it holds."""
    from nas.searchspace import count_architectures, load

    compiled = load(space)
    console.print(_decision_tree(compiled, space))
    console.print(_count_lines(count_architectures(compiled, limit=limit)), highlight=False)


def _decision_tree(compiled: Any, path: Path) -> Any:
    """Each decision with its domain, nested under the decision whose value activates it."""
    from rich.text import Text
    from rich.tree import Tree

    graph = compiled.graph
    position = {name: i for i, name in enumerate(compiled.order)}
    root = Tree(Text.assemble(("space ", ""), (compiled.name, "bold"),
                              f" ({path}): {len(compiled.order)} decisions"))
    branches: dict[str, Any] = {}
    for name in compiled.order:
        parents = sorted(graph.predecessors(name), key=position.__getitem__)
        label = Text.assemble((name, "bold"), ": ", _domain_text(compiled.domain(name)))
        conditions = compiled.describe_when(name)
        if conditions:
            label.append(f"  when {conditions}", style="dim")
        branches[name] = (branches[parents[-1]] if parents else root).add(label)
    return root


def _count_lines(result: Any) -> str:
    if result.exact:
        line = (f"distinct architectures: {result.distinct:,} (exact; "
                f"{result.assignments:,} assignments of the architecture decisions)")
    elif result.continuous:
        line = (f"distinct architectures: not enumerated — continuous decision(s): "
                f"{', '.join(result.continuous)}")
    else:
        line = (f"distinct architectures: more than {result.limit:,} assignments "
                f"({result.assignments:,}) — not enumerated")
    if result.training is not None:
        training = f"training configurations: {result.training:,}"
    else:
        training = ("training configurations: infinite (continuous: "
                    f"{', '.join(result.training_continuous)})")
    return f"{line}\n{training}"


@space_app.command("sample")
@user_errors
def space_sample(
    space: Path = typer.Argument(..., help="The search-space YAML file."),
    n: int = typer.Option(5, "-n", "--num", min=1, help="How many architectures to sample."),
    seed: int = typer.Option(None, "--seed", help="Seed of Optuna's RandomSampler (default: "
                             "fresh randomness)."),
    fmt: str = FormatOpt,
) -> None:
    """Sample architectures from SPACE at random, as a search would ask for them."""
    import optuna
    from rich.table import Table

    from nas.cli.render import print_json
    from nas.searchspace import load

    check_format(fmt)
    compiled = load(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs = [compiled.sample(study.ask()) for _ in range(n)]
    if fmt == "json":
        print_json(console, [{**spec.to_dict(), "arch_hash": spec.arch_hash} for spec in specs])
        return
    table = Table(title=f"{n} architectures sampled from {compiled.name}"
                  + (f" (seed {seed})" if seed is not None else ""),
                  title_justify="left", header_style="bold")
    for column in ("trial", "mixers", "d_model", "layers", "arch_hash"):
        table.add_column(column, justify="right" if column in ("trial", "d_model", "layers")
                         else "left")
    for i, spec in enumerate(specs):
        table.add_row(str(i), spec.short_form(), str(spec.d_model), str(spec.n_layers),
                      spec.arch_hash)
    console.print(table)


# ------------------------------------------------------------------------------------------------
# plot
# ------------------------------------------------------------------------------------------------


@app.command()
@user_errors
def plot(
    run: str = typer.Argument(..., help="Run name (or id)."),
    out: Path = typer.Option(..., "--out", "-o", help="front.png, or front.html (the figure "
                             "inline plus a table of the front)."),
    x: str = typer.Option(None, "--x", help="Objective on the x axis (default, two "
                          "objectives: the run's second; three or more: every pair)."),
    y: str = typer.Option(None, "--y", help="Objective on the y axis (default, two "
                          "objectives: the run's first; three or more: every pair)."),
    storage: str = StorageOpt,
) -> None:
    """Draw RUN: its front (a scatter matrix for three or more objectives), the hypervolume over
    all objectives against device-hours, and the mixers along the front."""
    from nas.cli.plots import write_plot

    store = Store(resolve_storage(storage), create=False)
    record = store.run(run)
    try:
        import matplotlib  # noqa: F401  (drawn in nas.cli.plots; checked here to say how to get it)
    except ImportError:
        # Printed here, not raised: rich would read "[plot]" in a NasError as markup.
        errors.print("[bold red]error:[/] matplotlib is not installed: pip install 'nas\\[plot]'",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    data = write_plot(record, store.trials(record.id), out, x, y,
                      store.ledger_entries(record.id))
    console.print(f"wrote {out} ({len(data.complete)} trials, {len(data.front)} on the front)",
                  highlight=False)


from nas.cli.measure import measure as _measure  # noqa: E402  (imports torch only when it runs)
from nas.cli.submit import submit as _submit  # noqa: E402  (imports Ray only when it runs)

app.command(name="measure")(user_errors(_measure))
app.command(name="submit")(user_errors(_submit))
