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


def writable(out: Path, force: bool) -> None:
    """NasError unless `out` may be written: a new file in an existing folder, or (with
    `force`) a regular file to replace — never through a symbolic link."""
    from nas.store.untrusted import shown

    if out.is_symlink() or (out.exists() and not (force and out.is_file())):
        raise NasError(f"--out {shown(str(out))} already exists; fix: pass --force to replace "
                       "it, or choose another path")
    if not out.parent.is_dir():
        raise NasError(f"--out {shown(str(out))}: its folder does not exist; fix: create it")


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

    writable(out, force)
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


@table_app.command("measure")
@user_errors
def table_measure(
    path: Path = typer.Argument(..., help="A table file (nas table export)."),
    out: Path = typer.Option(..., "--out", "-o", help="Table file to write (.json.gz); may be "
                             "PATH itself with --force."),
    phase: list[str] = typer.Option(["prefill", "decode", "train_step"], "--phase",
                                    help="Phases to time (repeat): prefill, decode, train_step."),
    threads: int = typer.Option(1, "--threads", "-t", min=1, help="Torch CPU threads."),
    passes: int = typer.Option(2, "--passes", min=1, max=20,
                               help="Times each entry is timed, in a new order each pass."),
    seq_len: int | None = typer.Option(None, "--seq-len", min=1,
                                       help="Tokens (default: the task's sequence length)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Time every architecture of a table on this CPU (untrained model, one thread by default,
    each entry `--passes` times in shuffled orders; the median kept, the disagreement and any
    contention recorded) and write the table with `latency_{phase}_ms` costs, which a replaying
    space can name as objectives. Run it on a quiet machine: it takes about a second per entry,
    phase and pass."""
    from rich.progress import Progress

    from nas.cli.measure import check_sizes
    from nas.cli.untrusted import markup
    from nas.store.untrusted import shown
    from nas.tabular import read, write
    from nas.tabular.measure import PHASES, measure_table

    bad = [p for p in phase if p not in PHASES]
    if bad:
        raise NasError(f"--phase {shown(bad[0])} is not a phase; fix: use {', '.join(PHASES)}")
    writable(out, force)
    check_sizes([seq_len] if seq_len else [], 1, threads)
    table = read(path)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("timing", total=passes * len(table.entries))
        measured = measure_table(table, phases=list(dict.fromkeys(phase)), threads=threads,
                                 passes=passes, seq_len=seq_len,
                                 progress=lambda done, total: bar.update(task, completed=done))
    write(measured, out)
    contended = sum(1 for e in measured.entries.values()
                    if any(e.costs.get(f"latency_{p}_ms_contended") for p in phase))
    console.print(f"timed {len(measured.entries):,} architectures × {len(set(phase))} phases × "
                  f"{passes} passes on {markup(measured.source['latency']['device'])}; "
                  f"{contended:,} had a contended timing; wrote {markup(out)}", highlight=False)


@table_app.command("card")
@user_errors
def table_card(
    path: Path = typer.Argument(..., help="A table file (nas table export)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Markdown file to write "
                                    "(default: print it)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """The table's data card in Markdown, computed from the table: size, cost, software,
    score distribution, seed noise, latency, the best configurations, the true front, the
    space and the commands that rebuild it."""
    from nas.tabular import read
    from nas.tabular.card import write_card

    if out is not None:
        writable(out, force)
    text = write_card(read(path), path.name)
    if out is None:
        print(text)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}", highlight=False)
