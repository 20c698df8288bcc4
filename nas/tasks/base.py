"""The Task contract: what the accuracy objective trains and scores on.

A task is a generator of (inputs, targets) batches, synthetic (MQAR) or cut from a corpus (lm).
Targets line up with inputs position by position: the model's logits at position t are scored
against ``targets[:, t]``, and positions holding ``IGNORE_INDEX`` are not scored. Scoring is
cross-entropy over the scored positions and accuracy = share of scored positions whose argmax
equals the target.

Importing this module does not import torch, so configs can be checked in processes without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100  # target value of positions that are not scored (torch's cross-entropy default)
SPLITS = ("train", "val")  # what Task.sample_split accepts


class Task(ABC):
    """A sequence task with a fixed vocabulary and sequence length."""

    vocab_size: int
    seq_len: int
    # Tasks made of several parts (levels of difficulty) name them here; evaluation then also
    # reports accuracy per part as f"accuracy_{name}", rows assigned by `row_groups`.
    group_names: tuple[str, ...] = ()
    # Bytes of text per token, for tasks whose tokens stand for text (``lm``: 1.0 for bytes, about
    # 2-4 for BPE); evaluation then reports bits_per_byte = loss / ln 2 / bytes_per_token.
    # None: tokens are the unit, and bits_per_byte is bits per token.
    bytes_per_token: float | None = None

    def row_groups(self, batch_size: int) -> list[int]:
        """The part (index into group_names) of each row of a batch of `batch_size`."""
        return [0] * batch_size

    @abstractmethod
    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch drawn only from `generator` (same generator state ⇒ same batch).

        Returns ``(inputs, targets)``, both ``(batch_size, seq_len)`` int64 on the CPU; inputs lie
        in ``[0, vocab_size)``, targets too except ``IGNORE_INDEX`` at unscored positions.
        """

    def sample_split(
        self, batch_size: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch from `split`: "train" (what training draws) or "val" (held-out evaluation).

        The hook for tasks with a fixed held-out data set (``lm``: the last part of a corpus),
        which override it. By default a task has one distribution: both splits are ``sample``,
        and evaluation is held out by drawing from a differently seeded generator.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return self.sample(batch_size, generator)
