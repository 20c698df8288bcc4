"""The Task contract: what the accuracy objective trains and scores on.

A task is a generator of synthetic (inputs, targets) batches. Targets line up with inputs position
by position: the model's logits at position t are scored against ``targets[:, t]``, and positions
holding ``IGNORE_INDEX`` are not scored. Scoring is cross-entropy over the scored positions and
accuracy = share of scored positions whose argmax equals the target.

Importing this module does not import torch, so configs can be checked in processes without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100  # target value of positions that are not scored (torch's cross-entropy default)


class Task(ABC):
    """A synthetic sequence task with a fixed vocabulary and sequence length."""

    vocab_size: int
    seq_len: int

    @abstractmethod
    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch drawn only from `generator` (same generator state ⇒ same batch).

        Returns ``(inputs, targets)``, both ``(batch_size, seq_len)`` int64 on the CPU; inputs lie
        in ``[0, vocab_size)``, targets too except ``IGNORE_INDEX`` at unscored positions.
        """
