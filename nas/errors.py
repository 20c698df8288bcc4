"""Errors a user can cause. The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class NasError(Exception):
    """Base of every error caused by user input or environment, not by a bug in nas."""


class SpaceError(NasError):
    """A search-space file is malformed: names the file, the key and the fix."""

    def __init__(self, path: str, key: str, problem: str, fix: str = "") -> None:
        self.path, self.key, self.problem, self.fix = path, key, problem, fix
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + problem + (f" — fix: {fix}" if fix else ""))

    def __reduce__(self):  # pickle by the constructor's own arguments
        return (type(self), (self.path, self.key, self.problem, self.fix))


class BudgetError(NasError):
    """A --budget string that cannot be parsed."""


class StoreError(NasError):
    """A storage URL that cannot be opened, or a run / trial that does not exist."""
