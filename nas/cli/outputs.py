"""Commands that write a run or a trial to files: `nas export` (a trained trial as a folder
PyTorch alone can load), `nas report` (one page, HTML and Markdown) and `nas plot` (the front and
its progress as PNG or HTML).

The heavy parts (torch for export, matplotlib for the figures) are imported only when a command
runs. Export's `--out` never writes through a link or over files unasked (`prepare_out`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from nas.cli.common import StorageOpt, console, errors, open_store, trial_ref, user_errors
from nas.errors import NasError


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

    store = open_store(storage)
    run, trial = trial_ref(store, ref)
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


@user_errors
def report(
    run: str = typer.Argument(..., help="Run name (or id)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (created)."),
    storage: str = StorageOpt,
) -> None:
    """A run on one page: report.html (self-contained) and report.md, with the front, the
    figure, the budget, the failures and the space."""
    from nas.cli.report import write_report

    paths = write_report(open_store(storage), run, out)
    console.print(f"wrote {', '.join(str(p) for p in paths)}", highlight=False)


@user_errors
def plot(
    runs: list[str] = typer.Argument(..., metavar="RUN", help="Run name (or id); "
                                     "several to overlay their fronts."),
    out: Path = typer.Option(..., "--out", "-o", help="front.png, or front.html (the figure "
                             "inline plus a table of the front, or of the runs compared)."),
    x: str = typer.Option(None, "--x", help="Objective on the x axis (default, two "
                          "objectives: the run's second; three or more: every pair)."),
    y: str = typer.Option(None, "--y", help="Objective on the y axis (default, two "
                          "objectives: the run's first; three or more: every pair)."),
    storage: str = StorageOpt,
) -> None:
    """Draw RUN: its front (a scatter matrix for three or more objectives), the hypervolume over
    all objectives against device-hours, and the mixers along the front. Several runs: their
    fronts overlaid over the objectives they share, and each one's hypervolume against its
    device-hours on one common reference point (as `nas pareto RUN RUN ...` reports it)."""
    store = open_store(storage)
    records = [store.run(run) for run in runs[:1]]  # a missing run is named before matplotlib
    try:
        import matplotlib  # noqa: F401  (drawn in nas.cli.plots; checked here to say how to get it)
    except ImportError:
        # Printed here, not raised: rich would read "[plot]" in a NasError as markup.
        errors.print("[bold red]error:[/] matplotlib is not installed: pip install 'nas\\[plot]'",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if len(runs) > 1:
        _plot_runs(store, runs, out, x, y)
        return
    from nas.cli.plots import write_plot

    (record,) = records
    data = write_plot(record, store.trials(record.id), out, x, y,
                      store.ledger_entries(record.id))
    console.print(f"wrote {out} ({len(data.complete)} trials, {len(data.front)} on the front)",
                  highlight=False)


def _plot_runs(store: Any, runs: list[str], out: Path, x: str | None, y: str | None) -> None:
    from nas.cli.fronts import load_comparison
    from nas.cli.plots import write_compare_plot
    from nas.cli.untrusted import markup

    data = write_compare_plot(load_comparison(store, runs), out, x, y)
    summary = "; ".join(f"{markup(f.run.name)}: hypervolume {f.hypervolume:.3f}, "
                        f"{f.combined} on the combined front" for f in data.comparison.runs)
    console.print(f"wrote {markup(out)} ({summary})", highlight=False)
