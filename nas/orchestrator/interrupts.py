"""Ctrl-C, SIGTERM and a closed stdout for the search driver.

Inside the search loop a Ctrl-C is staged: the first asks the loop to stop starting work and let
the running trials finish; the second asks it to cancel them. Both only count here: the loop
reads `count` between steps (at least twice a second), so a Ctrl-C never cuts a database write
or a tell to the strategy in half. A third raises KeyboardInterrupt at once, for a driver stuck
while cancelling.

SIGTERM (`kill`, `timeout`, a job scheduler about to SIGKILL) goes straight to the second stage:
the running trials are cancelled and recorded and the run is marked interrupted, quickly. So
does `stop(cause)`, which the driver calls when its stdout was closed (`nas search | head`).

Outside the loop's polling (starting up; building a candidate on the meta device, which takes
seconds for a large model) the driver enters `immediate()`: there the first signal raises
KeyboardInterrupt at once, since nothing is half-written that the driver's cleanup cannot mark.

While entered, SIGPIPE is ignored, so a write to a closed pipe raises BrokenPipeError (which the
driver handles) instead of killing the process before it can mark its run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Counts SIGINTs (a SIGTERM counts as the second) while entered. Only the main thread may
    install a signal handler; entered from another thread it installs nothing and Python's
    KeyboardInterrupt stays as it was."""

    def __init__(self) -> None:
        self.count = 0
        self.terminated = False  # a SIGTERM arrived
        self.reason: str | None = None  # what `stop` was told ("stdout closed")
        self._immediate = 0  # depth of `immediate()` blocks
        self._installed = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            if hasattr(signal, "SIGPIPE"):
                self._previous[signal.SIGPIPE] = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous[signal.SIGINT]
                          or signal.default_int_handler)
            signal.signal(signal.SIGTERM, self._previous[signal.SIGTERM] or signal.SIG_DFL)
            if hasattr(signal, "SIGPIPE"):
                previous = self._previous[signal.SIGPIPE]
                signal.signal(signal.SIGPIPE, signal.SIG_IGN if previous is None else previous)
            self._installed = False

    @property
    def cause(self) -> str:
        """What interrupted the search, for messages."""
        if self.reason:
            return self.reason
        return "SIGTERM" if self.terminated else "Ctrl-C"

    def stop(self, reason: str) -> None:
        """Stop as a SIGTERM would (cancel what runs), for `reason` (e.g. "stdout closed")."""
        self.reason = self.reason or reason
        self.count = max(self.count, 2)

    @contextmanager
    def immediate(self) -> Iterator[None]:
        """A block the loop does not poll in: a signal arriving inside (or one that came
        before it) raises KeyboardInterrupt at once."""
        if self.count:
            raise KeyboardInterrupt
        self._immediate += 1
        try:
            yield
        finally:
            self._immediate -= 1

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            self.terminated = True
            self.count = max(self.count, 1)
        self.count += 1
        if self.count > 2 or self._immediate:
            raise KeyboardInterrupt
