"""Errors a user can cause. The CLI prints them as one line, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NasError(Exception):
    """Base of every error caused by user input or environment, not by a bug in nas."""


class SpaceError(NasError):
    """A search-space file is malformed: names the file, the key and the fix.

    `key` is a dotted path into the file (`model.token_mixers.attention.heads`,
    `objectives.1.phase`); `line` and `column` (1-based) are filled in by the loader, which maps
    the key to where it is written. One line of text:

        FILE:LINE:COL: KEY: PROBLEM — fix: FIX
    """

    def __init__(self, path: str, key: str, problem: str, fix: str = "",
                 line: int | None = None, column: int | None = None) -> None:
        self.path, self.key, self.problem, self.fix = path, key, problem, fix
        self.line, self.column = line, column
        super().__init__(self._text())

    def _text(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        head = f"{where}: {self.key}: " if self.key else f"{where}: "
        text = head + clip(self.problem, MAX_PART) + (
            f" — fix: {clip(self.fix, MAX_PART)}" if self.fix else "")
        return " ".join(text.split("\n"))  # always one line

    def at(self, line: int | None, column: int | None = None) -> SpaceError:
        """The same error at `line`:`column` of the file (a new exception)."""
        return type(self)(self.path, self.key, self.problem, self.fix, line, column)

    def __reduce__(self):  # pickle by the constructor's own arguments
        return (type(self), (self.path, self.key, self.problem, self.fix, self.line, self.column))


MAX_PART = 600  # characters of a problem or a fix shown in one message line
MAX_SHOWN = 80  # characters of a user's value shown in a message


def clip(text: str, limit: int = MAX_PART) -> str:
    """`text` cut to `limit` characters, ending in '…' where it was cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def brief(value: object, limit: int = MAX_SHOWN) -> str:
    """repr(value) for a message, at most `limit` characters: a user's value may be huge (a
    long string, a large list), and formatting it whole would flood the message or exhaust
    memory. Containers are summarised without walking them all."""
    if isinstance(value, dict | list | tuple | set | frozenset) and len(value) > limit:
        return f"<{type(value).__name__} of {len(value)} items>"
    if isinstance(value, str) and len(value) > limit:
        return clip(repr(value[:limit]), limit)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    try:
        return clip(repr(value), limit)
    except (RecursionError, ValueError):  # a structure too deep, an int too long to print
        return f"<{type(value).__name__}>"


def did_you_mean(word: object, known: Iterable[object]) -> str:
    """' (did you mean 'attention'?)' for the closest of `known` to `word`, or '' when none is
    close. Meant to be appended to a problem: f"unknown mixer {w!r}{did_you_mean(w, names)}"."""
    if not isinstance(word, str):
        return ""
    names = [str(k) for k in known]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close:  # case slips and prefixes: 'Attention', 'swi'
        lowered = {n.lower(): n for n in names}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
        else:
            close = [n for n in names if len(word) >= 3 and n.startswith(word)][:1]
    return f" (did you mean {close[0]!r}?)" if close and close[0] != word else ""


class BudgetError(NasError):
    """A --budget string that cannot be parsed."""


class StoreError(NasError):
    """A storage URL that cannot be opened, or a run / trial that does not exist."""
