"""`python -m nas` is the `nas` command."""

from nas.cli import app

app(prog_name="nas")
