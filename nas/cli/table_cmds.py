"""`nas table`: tabular benchmarks (nas.tabular) — `export` turns a finished grid run into a
table file that searches can replay (`search.evaluate: {table: FILE}`), `show` prints what a
table holds (its data card's figures: size, cost, score distribution, seed noise).

A table file may come from someone else: `show` reads it as data only (nas.tabular.read).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nas.cli.common import FormatOpt, StorageOpt, check_format, console, open_store, user_errors
from nas.errors import NasError

table_app = typer.Typer(help="Tabular benchmarks: export a grid run as a table, show a table.",
                        no_args_is_help=True)


@table_app.command("export")
@user_errors
def table_export(
    run: str = typer.Argument(..., help="Run name (or id): a grid run with replicates."),
    out: Path = typer.Option(..., "--out", "-o", help="Table file to write (.json.gz)."),
    storage: str = StorageOpt,
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Write run RUN's completed trials as a table: one entry per configuration, one training
    per seed, each with its metrics and device-seconds."""
    from nas.cli.untrusted import markup
    from nas.store.untrusted import shown
    from nas.tabular import export_table, write

    if out.is_symlink() or (out.exists() and not (force and out.is_file())):
        raise NasError(f"--out {shown(str(out))} already exists; fix: pass --force to replace "
                       "it, or choose another path")
    if not out.parent.is_dir():
        raise NasError(f"--out {shown(str(out))}: its folder does not exist; fix: create it")
    table = export_table(open_store(storage), run)
    if not table.entries:
        raise NasError(f"run {shown(run)} has no completed trial to export; fix: let the grid "
                       "search train some (nas resume)")
    write(table, out)
    trainings = sum(len(e.trainings) for e in table.entries.values())
    console.print(f"wrote {len(table.entries):,} configurations ({trainings:,} trainings) of "
                  f"{markup(table.source.get('run', run))} to {markup(out)} "
                  f"({out.stat().st_size / 1e6:.2f} MB)", highlight=False)


@table_app.command("show")
@user_errors
def table_show(
    path: Path = typer.Argument(..., help="A table file (nas table export)."),
    fmt: str = FormatOpt,
) -> None:
    """What a table holds: configurations, trainings, device-seconds, and per objective the
    distribution of the configurations' means and the noise between seeds."""
    from rich.table import Table as RichTable

    from nas.cli.untrusted import markup
    from nas.formatting import format_seconds, format_value
    from nas.tabular import read
    from nas.tabular.summary import QUANTILES, summarize

    fmt = check_format(fmt)
    summary = summarize(read(path))
    if fmt == "json":
        console.print_json(json.dumps(summary.to_json()))
        return
    console.print(f"{markup(summary.name)}: {summary.configurations:,} configurations, "
                  f"{summary.trainings:,} trainings, {format_seconds(summary.device_seconds)} "
                  f"of device time", highlight=False)
    grid = RichTable(show_header=True, header_style="bold")
    grid.add_column("objective")
    for q in QUANTILES:
        grid.add_column({0.0: "min", 1.0: "max"}.get(q, f"p{int(q * 100)}"), justify="right")
    for name in ("seed noise (median)", "p90", "noisier than the IQR"):
        grid.add_column(name, justify="right")
    for o in summary.objectives:
        noise = ["—"] * 3 if o.noise_median is None else [
            format_value(o.name, o.noise_median), format_value(o.name, o.noise_p90),
            f"{o.noisy_share:.0%}"]
        grid.add_row(markup(o.name), *(format_value(o.name, v) for v in o.quantiles), *noise)
    console.print(grid)
