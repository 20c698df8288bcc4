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


class TrialTimedOut(NasError):
    """Training ran past its time limit (`search.trial_timeout`): stopped after `step` steps
    and `seconds` of training."""

    def __init__(self, step: int, seconds: float, limit: float) -> None:
        self.step, self.seconds, self.limit = step, seconds, limit
        super().__init__(
            f"timeout: training took {seconds:.1f} s by step {step}, past the {limit:.1f} s "
            "it had left under search.trial_timeout; fix: raise search.trial_timeout, or "
            "lower training.steps"
        )

    def __reduce__(self):
        return (type(self), (self.step, self.seconds, self.limit))
