"""Ctrl-C for the search driver, in two stages.

The first Ctrl-C asks the loop to stop starting work and let the running trials finish; the
second asks it to cancel them. Both only count here: the loop reads `count` between steps, so a
Ctrl-C never cuts a database write or a tell to the strategy in half. A third raises
KeyboardInterrupt at once, for a driver stuck while cancelling.

SIGTERM (`kill`, `timeout`, a job scheduler about to SIGKILL) goes straight to the second stage:
the running trials are cancelled and recorded and the run is marked interrupted, quickly.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Interrupts:
    """Counts SIGINTs (a SIGTERM counts as the second) while entered. Only the main thread may
    install a signal handler; entered from another thread it installs nothing and Python's
    KeyboardInterrupt stays as it was."""

    def __init__(self) -> None:
        self.count = 0
        self.terminated = False  # a SIGTERM arrived
        self._installed = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous[signal.SIGINT]
                          or signal.default_int_handler)
            signal.signal(signal.SIGTERM, self._previous[signal.SIGTERM] or signal.SIG_DFL)
            self._installed = False

    @property
    def cause(self) -> str:
        """What interrupted the search, for messages."""
        return "SIGTERM" if self.terminated else "Ctrl-C"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            self.terminated = True
            self.count = max(self.count, 1)
        self.count += 1
        if self.count > 2:
            raise KeyboardInterrupt
