"""Ctrl-C for the search driver, in two stages.

The first Ctrl-C asks the loop to stop starting work and let the running trials finish; the
second asks it to cancel them. Both only count here: the loop reads `count` between steps, so a
Ctrl-C never cuts a database write or a tell to the strategy in half. A third raises
KeyboardInterrupt at once, for a driver stuck while cancelling.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Interrupts:
    """Counts SIGINTs while entered. Only the main thread may install a signal handler; entered
    from another thread it installs nothing and Python's KeyboardInterrupt stays as it was."""

    def __init__(self) -> None:
        self.count = 0
        self._installed = False
        self._previous: object = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 2:
            raise KeyboardInterrupt
