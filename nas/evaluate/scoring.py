"""Loss and accuracy over the scored positions of a task batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.tasks.base import IGNORE_INDEX


def masked_loss(
    logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy of `logits` (B, T, V) against `targets` (B, T), skipping IGNORE_INDEX."""
    return F.cross_entropy(
        logits.flatten(0, 1).float(),  # (B*T, V)
        targets.flatten(),  # (B*T,)
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )


def count_correct(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct, scored) counts as 0-d tensors: scored positions whose argmax equals the target."""
    scored = targets != IGNORE_INDEX  # (B, T)
    hits = (logits.argmax(dim=-1) == targets) & scored  # (B, T)
    return hits.sum(), scored.sum()
