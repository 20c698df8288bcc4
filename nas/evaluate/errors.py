"""Errors a trial can end with."""

from __future__ import annotations

from nas.errors import NasError


class TrialDiverged(NasError):
    """Training produced a non-finite loss: the candidate (or its recipe) is unstable.

    `step` is the last step of the window in which the loss went non-finite.
    """

    def __init__(self, step: int, loss: float) -> None:
        self.step, self.loss = step, loss
        super().__init__(
            f"training diverged: loss is {loss} by step {step}; "
            "fix: lower the learning rate or tighten grad_clip"
        )

    def __reduce__(self):  # pickle by the constructor's own arguments
        return (type(self), (self.step, self.loss))
