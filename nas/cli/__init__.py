"""The `nas` command line (typer + rich). This module only assembles the app, in the order
`nas --help` lists the commands; each command lives with its group:

    nas.cli.common       consoles, the one-line error contract (`user_errors`), --storage and
                         `open_store`, --format, RUN/NUMBER references: what every command shares
    nas.cli.search_cmds  search, resume
    nas.cli.space_cmds   validate, space show|sample, blocks list
    nas.cli.query        runs, trials, pareto, show, compare
    nas.cli.manage       rm
    nas.cli.outputs      export, report, plot
    nas.cli.measure      measure (imports torch only when it runs)
    nas.cli.submit       submit (imports Ray only when it runs)
    nas.cli.table_cmds   table export|show (tabular benchmarks)

and below them what they draw with: nas.cli.render (tables, JSON, csv), nas.cli.untrusted (text
from a database made safe to print), nas.cli.fronts (runs compared on their shared objectives),
nas.cli.plots and nas.cli.report (figures and pages).

Errors a user can cause (a bad space file, budget, storage URL or run name) print as one line on
stderr with exit code 2 — never a traceback. Query commands take `--format table|json|csv`.
Storage: `--storage URL`, else $NAS_STORAGE, else (for `search`) the space's `storage:`, else
sqlite:///nas.db in the working directory. Importing this package stays light: every command
imports what it needs (torch, Optuna, Ray, matplotlib) when it runs.
"""

from __future__ import annotations

import typer

from nas.cli import manage, outputs, query, search_cmds, space_cmds, table_cmds
from nas.cli.common import user_errors
from nas.cli.measure import measure as _measure
from nas.cli.submit import submit as _submit

app = typer.Typer(
    name="nas",
    help="Declarative architecture search for hybrid sequence models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command()(search_cmds.search)
app.command()(search_cmds.resume)
app.command()(space_cmds.validate)
app.command()(query.runs)
app.command()(query.trials)
app.command()(query.pareto)
app.command()(query.show)
app.command()(query.compare)
app.command("rm")(manage.rm)
app.command()(outputs.export)
app.command()(outputs.report)
app.add_typer(space_cmds.blocks_app, name="blocks")
app.add_typer(space_cmds.space_app, name="space")
app.command()(outputs.plot)
app.command(name="measure")(user_errors(_measure))
app.command(name="submit")(user_errors(_submit))
app.add_typer(table_cmds.table_app, name="table")
