"""Progress output that may go away: `nas search ... | head` closes the driver's stdout early.

The search must not die of that (and leave its run `running`): `OutputGuard` wraps a Reporter
so that a write to a closed pipe silences the output for good (stdout, and stderr where it is
the same pipe, then point at the null device, so later prints and the interpreter's final flush
succeed) and calls `on_closed` once. The driver passes a callback that stops the search as a
SIGTERM would, so it ends `interrupted` and `nas resume` takes it up.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any


def is_closed_pipe(exc: BaseException) -> bool:
    """Whether `exc` is a write to a pipe (or socket) whose reader is gone."""
    return isinstance(exc, BrokenPipeError) or (
        isinstance(exc, OSError) and exc.errno == errno.EPIPE)


def silence_stdout() -> None:
    """Point stdout (and stderr, when it is the same pipe) at the null device: their later
    writes and flushes succeed and go nowhere."""
    streams = [sys.__stdout__]
    try:
        out, err = os.fstat(sys.__stdout__.fileno()), os.fstat(sys.__stderr__.fileno())
        if (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino):
            streams.append(sys.__stderr__)
    except (AttributeError, OSError, ValueError):  # no real file behind them (tests, embedding)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in streams:
            os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


class OutputGuard:
    """A Reporter that forwards every call to `reporter` until one fails on a closed pipe; from
    then on calls do nothing, the output is silenced and `on_closed()` has been called (once).
    Other errors pass through unchanged."""

    def __init__(self, reporter: Any, on_closed: Callable[[], None]) -> None:
        self._reporter = reporter
        self._on_closed = on_closed
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._reporter, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.closed:
                return None
            try:
                return target(*args, **kwargs)
            except OSError as exc:
                if not is_closed_pipe(exc):
                    raise
                self._close()
                return None
            except SystemExit as exc:  # rich's Console exits on a broken pipe (on_broken_pipe)
                if exc.__context__ is None or not is_closed_pipe(exc.__context__):
                    raise
                self._close()
                return None

        return call

    def _close(self) -> None:
        self.closed = True
        silence_stdout()
        self._on_closed()
