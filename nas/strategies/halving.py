"""Multi-fidelity: asynchronous successive halving (ASHA, Li et al. 2020) on several objectives.

A trial trains in segments ending at the rungs ``min_steps · reduction^k`` (and ``max_steps``).
At each rung it reports its objective vector there — held-out accuracy (or loss) at that step,
with latency and the other objectives that are known before training — and the scheduler
answers at once:

- **continue** if the trial is in the best ``ceil(n / reduction)`` of the ``n`` trials that
  have reached this rung so far, best meaning lowest non-dominated rank, then largest crowding
  distance (NSGA-II's order), so promotion keeps a spread front rather than one scalar's
  winners — ranked over the objectives training changes (`trained`), those known before
  training (params, latency) only breaking ties: otherwise the smallest models are on every
  rung's front whatever they learned, and stacks at chance accuracy get promoted;
- **pause** otherwise. A paused trial keeps its checkpoint; as more trials reach its rung the
  quota grows, and `next_promotion()` hands back the best paused trial that is now inside it —
  the driver resumes such a trial before it samples a new one (ASHA's "promote if you can, else
  grow the bottom rung"). Trials still paused when the search ends are PRUNED, curves kept.

Optuna's pruners rank a single intermediate value and cannot do this, so the rule is ours. It is
a pure decision object with no I/O: the driver (or a Ray Tune TrialScheduler wrapping it) owns
the trials and the checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from nas.strategies.pareto import Directions, rung_order


@dataclass(frozen=True)
class Fidelity:
    """Training-step rungs: min_steps, min_steps·η, min_steps·η², … and finally max_steps."""

    min_steps: int
    max_steps: int
    reduction: int = 3

    def __post_init__(self) -> None:
        if self.min_steps < 1 or self.max_steps < self.min_steps:
            raise ValueError(
                f"fidelity: need 1 <= min_steps <= max_steps, got min_steps={self.min_steps}, "
                f"max_steps={self.max_steps}"
            )
        if self.reduction < 2:
            raise ValueError(f"fidelity: reduction must be >= 2, got {self.reduction}")

    @property
    def rungs(self) -> tuple[int, ...]:
        steps, rungs = self.min_steps, []
        while steps < self.max_steps:
            rungs.append(steps)
            steps *= self.reduction
        return (*rungs, self.max_steps)


@dataclass
class _Rung:
    values: dict[Hashable, tuple[float, ...]] = field(default_factory=dict)  # in arrival order
    promoted: set[Hashable] = field(default_factory=set)


class SuccessiveHalving:
    """The ASHA decision rule over trials identified by any hashable key.

    Call `report(trial, rung, values)` when `trial` has trained to ``fidelity.rungs[rung]``;
    it returns "continue", "pause" or "done" (the last rung). Not thread-safe: one driver calls it.
    """

    def __init__(self, fidelity: Fidelity, directions: Directions,
                 trained: Sequence[bool] | None = None) -> None:
        self.fidelity = fidelity
        self.directions = tuple(directions)
        # which objectives training changes: the others only break ties (`rung_order`)
        self.trained = tuple(trained) if trained is not None else (True,) * len(directions)
        self._rungs = [_Rung() for _ in fidelity.rungs]

    def report(self, trial: Hashable, rung: int, values: Sequence[float]) -> str:
        """Record `trial`'s objective vector at `rung` and decide what it does next."""
        if len(values) != len(self.directions):
            raise ValueError(f"expected {len(self.directions)} objective values, got {values}")
        level = self._rungs[rung]
        if trial in level.values:
            raise ValueError(f"trial {trial!r} already reported at rung {rung}")
        level.values[trial] = tuple(float(v) for v in values)
        if rung == len(self._rungs) - 1:
            return "done"
        if trial in self._quota(rung):
            level.promoted.add(trial)
            return "continue"
        return "pause"

    def next_promotion(self) -> tuple[Hashable, int] | None:
        """(trial, rung it resumes from) for the best paused trial now inside its rung's quota,
        highest rung first; None if there is none. The trial counts as promoted from then on."""
        for rung in reversed(range(len(self._rungs) - 1)):
            level = self._rungs[rung]
            for trial in self._quota(rung):
                if trial not in level.promoted:
                    level.promoted.add(trial)
                    return trial, rung
        return None

    def paused(self) -> list[Hashable]:
        """Trials waiting at a rung below the last (PRUNED if the search ends now)."""
        return [
            trial
            for level in self._rungs[:-1]
            for trial in level.values
            if trial not in level.promoted
        ]

    def _quota(self, rung: int) -> list[Hashable]:
        """The trials of `rung` that may go on: the best ceil(n / reduction) of its n results."""
        level = self._rungs[rung]
        trials = list(level.values)
        order = rung_order([level.values[t] for t in trials], self.directions, self.trained)
        keep = math.ceil(len(trials) / self.fidelity.reduction)
        return [trials[i] for i in order[:keep]]
