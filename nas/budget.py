"""Search budgets: parsing `--budget` and describing what is spent and what is left.

Units:
  `100gpuh`, `2cpuh`   device-hours: each trial's wall time × devices it held, summed over trials
                       (one device per worker; a CPU worker counts as one device)
  `30gpum`, `5cpum`    the same in device-minutes, for small searches
  `90s`, `30m`, `2h`   wall clock from the start of the search
  `50trials`           trials charged (completed or failed; duplicates answered from the
                       database cost nothing)

A Budget is a pure value: the ledger of charges lives in the database (nas_budget_ledger), and
the search loop (nas.orchestrator.search) decides from the totals whether another trial may
start and when running trials are stopped; this module neither reads nor decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from nas.errors import BudgetError
from nas.formatting import format_seconds

Unit = Literal["device_seconds", "wall_seconds", "trials"]

_PATTERN = re.compile(
    r"^\s*(?P<amount>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>gpuh|cpuh|gpum|cpum|s|sec|m|min|h|hr|trials?)\s*$",
    re.IGNORECASE,
)
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


@dataclass(frozen=True)
class Budget:
    text: str
    unit: Unit
    amount: float  # seconds for device/wall budgets, a count for trials
    device_kind: str | None = None  # "gpu" | "cpu" for device-hour budgets

    def describe(self, spent: float) -> str:
        """'3m 10s of 6m wall clock', '0.04 of 2 cpuh', '5 of 50 trials'."""
        if self.unit == "trials":
            return f"{int(spent)} of {int(self.amount)} trials"
        if self.unit == "wall_seconds":
            return f"{format_seconds(spent)} of {format_seconds(self.amount)} wall clock"
        scale, unit = self._device_unit()
        return f"{spent / scale:.3g} of {self.amount / scale:.3g} {unit}"

    def describe_left(self, spent: float) -> str:
        """What is left of the budget, in its own unit: '2m 50s', '1.96 cpuh', '45 trials'."""
        left = max(0.0, self.amount - spent)
        if self.unit == "trials":
            return f"{int(left)} trials"
        if self.unit == "wall_seconds":
            return format_seconds(left)
        scale, unit = self._device_unit()
        return f"{left / scale:.3g} {unit}"

    def _device_unit(self) -> tuple[int, str]:
        """(seconds per unit, unit name) of a device budget as written: hours, or minutes for
        `…gpum`/`…cpum`."""
        if self.text.strip().lower().endswith("m"):
            return 60, f"{self.device_kind}m"
        return 3600, f"{self.device_kind}h"

    def fraction(self, spent: float) -> float:
        return min(1.0, spent / self.amount) if self.amount > 0 else 1.0


def parse_budget(text: str) -> Budget:
    """Parse a budget string; raises BudgetError with the accepted forms."""
    match = _PATTERN.match(str(text))
    if not match:
        raise BudgetError(
            f"cannot read budget {text!r}; use device-hours (100gpuh, 2cpuh) or -minutes "
            "(30gpum, 5cpum), wall clock "
            "(90s, 30m, 2h) or a trial count (50trials)"
        )
    amount = float(match["amount"])
    unit = match["unit"].lower()
    if amount <= 0:
        raise BudgetError(f"budget {text!r} must be positive")
    if unit in ("gpuh", "cpuh", "gpum", "cpum"):
        scale = 3600 if unit.endswith("h") else 60
        return Budget(text, "device_seconds", amount * scale, device_kind=unit[:3])
    if unit.startswith("trial"):
        if amount != int(amount):
            raise BudgetError(f"budget {text!r}: a trial count must be a whole number")
        return Budget(text, "trials", amount)
    return Budget(text, "wall_seconds", amount * _SECONDS[unit])

