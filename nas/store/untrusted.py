"""Rows read as data: a database may have been edited by hand, damaged, or come from someone
else, so what a row holds is checked before a record is built from it.

`reading` turns a row that cannot be decoded (malformed JSON, nesting too deep, a date that is
no date, a number too long) or that has the wrong shape into one StoreError naming what was read,
the database and the fix. The shape checks below raise ValueError for `reading` to report. No
message built here spans more than one line, whatever the row holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nas.errors import StoreError

MAX_NAME = 200  # characters of an objective or metric name; nas writes far shorter ones
MAX_OBJECTIVES = 64
DIRECTIONS = ("maximize", "minimize")
# What decoding and checking a row can raise; anything else is a bug and keeps its traceback.
ROW_ERRORS = (ValueError, TypeError, KeyError, RecursionError, OverflowError, MemoryError)


def shown(value: object, limit: int = 120) -> str:
    """repr(value) cut to about `limit` characters: one line (repr escapes newlines and control
    characters) however long or strange the value is."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def one_line(text: str, limit: int = 200) -> str:
    """`text` on one line (control characters shown escaped), at most about `limit` chars."""
    text = text[:limit]
    flat = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


@contextmanager
def reading(what: str, url: str) -> Iterator[None]:
    """Run a read whose rows may be malformed: ROW_ERRORS become one StoreError naming `what`,
    the database at `url` and the fix."""
    try:
        yield
    except ROW_ERRORS as exc:
        reason = one_line(str(exc) or type(exc).__name__, 160)
        raise StoreError(f"{what} in {url} holds malformed data ({reason}): the database was "
                         "edited or damaged; restore it from a backup") from None


def json_object(value: Any, column: str) -> dict[str, Any]:
    """A JSON column that must hold an object."""
    if not isinstance(value, dict):
        raise ValueError(f"{column} is a JSON {type(value).__name__}, not an object")
    return value


def numbers_by_name(value: Any, column: str) -> dict[str, float] | None:
    """A JSON column of name -> number (objective values, metrics); None stays None."""
    if value is None:
        return None
    for name, number in json_object(value, column).items():
        if len(name) > MAX_NAME:
            raise ValueError(f"{column} has a name {len(name):,} characters long")
        if number is not None and not isinstance(number, int | float):
            raise ValueError(f"{column}[{shown(name, 40)}] is a {type(number).__name__}, "
                             "not a number")
    return dict(value)


def objective_values(values: dict[str, float] | None, names: list[str], number: int
                     ) -> dict[str, float]:
    """The values of COMPLETE trial `number`: a number (not null, not a boolean) for every
    objective `names` of its run, or ValueError saying which is missing."""
    for name in names:
        value = (values or {}).get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            problem = "no value" if value is None else f"{shown(value, 30)}, not a number,"
            raise ValueError(f"trial {number} is COMPLETE but has {problem} for objective "
                             f"{shown(name, 40)}")
    return dict(values or {})


def objectives_list(value: Any) -> list[dict[str, str]]:
    """A run's objectives: a list of {name, direction} with a known direction."""
    if not isinstance(value, list) or len(value) > MAX_OBJECTIVES:
        raise ValueError(f"objectives is not a list of at most {MAX_OBJECTIVES} objectives")
    for objective in value:
        if not isinstance(objective, dict):
            raise ValueError(f"an objective is a {type(objective).__name__}, not an object")
        name, direction = objective.get("name"), objective.get("direction")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise ValueError(f"objective name {shown(name, 40)} is not a short text")
        if direction not in DIRECTIONS:
            raise ValueError(f"objective {shown(name, 40)} has direction "
                             f"{shown(direction, 40)}, not maximize or minimize")
    return list(value)


def curve_point(step: Any, name: Any, value: Any) -> tuple[int, str, float]:
    """One (step, metric name, value) point of a trial's curve."""
    if not isinstance(step, int) or not isinstance(name, str):
        raise ValueError(f"curve point ({shown(step, 30)}, {shown(name, 30)}) is malformed")
    if not isinstance(value, int | float):
        raise ValueError(f"curve value {shown(value, 30)} is not a number")
    return step, name, float(value)


def text(value: Any, column: str, *, nullable: bool = False) -> str | None:
    """A text column (SQLite stores whatever it is given, so a hand edit can put a number or a
    blob in one)."""
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{column} is a {type(value).__name__}, not text")
    return value


def integer(value: Any, column: str, *, nullable: bool = False) -> int | None:
    """An integer column (booleans are not integers here)."""
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{column} is {shown(value, 40)}, not an integer")
    return value


def number(value: Any, column: str, *, nullable: bool = False) -> float | None:
    """A float column."""
    if value is None and nullable:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{column} is {shown(value, 40)}, not a number")
    return float(value)
