"""Text from a database, made safe to print.

A database may come from someone else, and every string in it reaches the terminal: a run name
holding `[red]` or `[/x]` would be read as rich markup (restyling the output, or raising), one
holding an ANSI escape or a newline could move the cursor, clear the screen or forge lines of
output, and one of 50 MB would stall rendering. Before a record is shown as a table, its strings
pass through `plain` (ANSI sequences removed, other control characters written as escapes, long
text cut) and, where rich reads markup, `markup`. JSON output needs none of this (json.dumps
escapes control characters); csv cells get `plain` without a length limit.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from rich.markup import escape

from nas.errors import NasError
from nas.store import RunRecord, TrialRecord

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character ESC sequences.
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
MAX_CELL = 300  # characters of one table cell
MAX_TEXT = 20_000  # characters of a long text shown whole (an error, with its lines)
MAX_LINES = 200  # lines of such a text
MAX_DEPTH = 12  # levels of a stored spec shown; deeper parts are elided


def plain(text: Any, limit: int | None = MAX_CELL, *, lines: bool = False) -> str:
    """`text` with ANSI escape sequences removed and every other control character (newlines
    too, unless `lines`) written as its escape, cut to `limit` characters (None: no limit)."""
    text = str(text)
    if limit is not None and len(text) > 2 * limit:
        text = text[:2 * limit]  # escapes only grow it; bound the work first
    text = ANSI.sub("", text)
    if lines and text.count("\n") > MAX_LINES:
        text = "\n".join(text.split("\n", MAX_LINES)[:MAX_LINES]) + "\n…"
    out = "".join(ch if ch.isprintable() or (lines and ch == "\n") else repr(ch)[1:-1]
                  for ch in text)
    if limit is not None and len(out) > limit:
        return out[:limit - 1] + "…"
    return out


def markup(text: Any, limit: int | None = MAX_CELL) -> str:
    """`plain(text)` escaped for rich markup: shown as written, never as styles."""
    return escape(plain(text, limit))


def _safe_tree(value: Any, depth: int = 0) -> Any:
    """A stored JSON value with every string (keys too) passed through `markup`."""
    if depth > MAX_DEPTH:
        return "…"
    if isinstance(value, str):
        return markup(value)
    if isinstance(value, dict):
        return {markup(k): _safe_tree(v, depth + 1) for k, v in list(value.items())[:200]}
    if isinstance(value, list):
        return [_safe_tree(v, depth + 1) for v in value[:200]]
    return value


def _safe_numbers(values: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else {markup(k): v for k, v in values.items()}


def shown_run(run: RunRecord) -> RunRecord:
    """A copy of `run` whose text is safe to print in rich markup (for tables only: the
    original keeps its real name for lookups)."""
    return replace(
        run, name=markup(run.name), status=markup(run.status), space_path=markup(run.space_path),
        space_hash=markup(run.space_hash), strategy=markup(run.strategy),
        budget=markup(run.budget), host=markup(run.host),
        message=None if run.message is None else markup(run.message, MAX_TEXT),
        objectives=[{"name": markup(o["name"]), "direction": o["direction"]}
                    for o in run.objectives],
        versions={markup(k): markup(v) for k, v in run.versions.items()})


def shown_trial(trial: TrialRecord) -> TrialRecord:
    """A copy of `trial` whose text is safe to print in rich markup. The error keeps its lines
    and is not markup-escaped here (the renderer escapes it)."""
    return replace(
        trial, state=markup(trial.state), short_form=markup(trial.short_form),
        arch_hash=markup(trial.arch_hash), config_hash=markup(trial.config_hash),
        device=None if trial.device is None else markup(trial.device),
        worker=None if trial.worker is None else markup(trial.worker),
        error=None if trial.error is None else plain(trial.error, MAX_TEXT, lines=True),
        values=_safe_numbers(trial.values), metrics=_safe_numbers(trial.metrics),
        spec=_safe_tree(trial.spec))


def checked_spec(run: RunRecord, trial: TrialRecord) -> TrialRecord:
    """`trial` with its spec in canonical form, or NasError when the stored spec is not an
    ArchSpec at all (`nas show` and `nas compare` lay it out field by field)."""
    try:
        return replace(trial, spec=trial.arch.to_dict())
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise NasError(f"trial {plain(run.name, 100)}/{trial.number} has a malformed "
                       f"architecture in the database ({plain(exc, 160)}): it was edited or "
                       "damaged; restore it from a backup") from None


def csv_cells(row: dict[str, Any]) -> dict[str, Any]:
    """A csv row whose text cells hold no control characters (the data otherwise unchanged)."""
    return {k: plain(v, None) if isinstance(v, str) else v for k, v in row.items()}
