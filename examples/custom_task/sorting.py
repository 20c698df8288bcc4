"""A custom task for `nas`: sort a short sequence of digits.

Each row is ``x_1 .. x_n SEP y_1 .. y_n`` where y is x sorted; the model reads the row left to
right and is scored on predicting each y_i from the position before it (next-token style), so
it must count what came before SEP. Used by examples/custom_task/space.yaml:

    cd examples/custom_task && nas search space.yaml --budget 2m --allow-code
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100  # targets at unscored positions (nas.tasks.IGNORE_INDEX)


@dataclass(frozen=True)
class SortDigits:
    """The protocol nas expects: vocab_size, seq_len, sample(batch_size, generator)."""

    length: int = 8
    digits: int = 10

    @property
    def vocab_size(self) -> int:
        return self.digits + 1  # the digits, then SEP

    @property
    def seq_len(self) -> int:
        return 2 * self.length + 1

    def sample(self, batch_size: int, generator: torch.Generator):
        n, sep = self.length, self.digits
        x = torch.randint(0, self.digits, (batch_size, n), generator=generator)  # (B, n)
        y = x.sort(dim=1).values  # (B, n)
        inputs = torch.cat((x, torch.full((batch_size, 1), sep), y), dim=1)  # (B, 2n+1)
        targets = torch.full_like(inputs, IGNORE)
        targets[:, n : 2 * n] = y  # position n (SEP) predicts y_1, ..., position 2n-1 predicts y_n
        return inputs, targets


def make_task(length: int = 8, digits: int = 10) -> SortDigits:
    """The entrypoint named in space.yaml: its keyword arguments are the task's other keys."""
    return SortDigits(length=length, digits=digits)
