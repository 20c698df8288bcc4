"""`nas search` and `nas resume`: run a search to its budget's end, then print how it ended.

The loop itself is nas.orchestrator.search, imported when a command runs (it imports torch and
Optuna); this module only reads the options, builds the progress reporter and prints the
outcome. Exit status 1 unless the search finished (`report_outcome`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from nas.cli.common import StorageOpt, console, errors, resolve_storage, user_errors
from nas.errors import NasError
from nas.store import COMPLETE, Store
from nas.store.engine import database_location

WorkersOpt = typer.Option(None, "--workers", "-w", min=1, help="Trials run at once (default: "
                          "one worker per GPU, 1 on a CPU machine; with Ray, the cluster's size).")
ThreadsOpt = typer.Option(None, "--threads", "-t", min=1, help="Torch CPU threads per local "
                          "worker (default: OMP_NUM_THREADS if set, else cores / workers).")
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
    from nas.cli.render import print_notes
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
    report_outcome(run_search(compiled, options, reporter), url, progress)


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
    report_outcome(resume_search(run, options, reporter), url, progress)


def print_busy(out: Console) -> None:
    """One warning line when other processes keep this machine's cores busy (a search run
    then would be slower and its timings contended), read over a 0.3 s probe."""
    from nas.evaluate.contention import busy_warning

    warning = busy_warning()
    if warning is not None:
        head, _, rest = warning.partition(": ")
        out.print(f"[yellow]{head}:[/] {rest}", highlight=False, soft_wrap=True)


def report_outcome(outcome: Any, url: str, progress: str | None = None) -> None:
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

    complete = Store(url).trials(run.id, states=[COMPLETE])
    for row in proxy_agreement(complete, proxy_names(complete)):
        console.print(describe_agreement(row), highlight=False)
    console.print(f"database: {database_location(url)}")
    console.print(f"explore:  nas trials {run.name} --storage {url}    "
                  f"nas show {run.name}/<trial> --storage {url}")
    if outcome.status != "finished":
        console.print(f"resume:   nas resume {run.name} --storage {url}")
        raise typer.Exit(1)
