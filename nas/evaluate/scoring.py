"""Loss and accuracy over the scored positions of a task batch, and what a loss implies."""

from __future__ import annotations

import math

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


def loss_metrics(loss: float, bytes_per_token: float | None = None) -> dict[str, float]:
    """What a mean cross-entropy `loss` in nats per token implies, for every task:

    * ``bits_per_byte`` = loss / ln 2 / bytes_per_token: bits per byte of text for a task whose
      tokens stand for text (``lm``: 1.0 for bytes, so 8 = a uniform guess over the 256 bytes;
      val bytes / val tokens for BPE); with `bytes_per_token` None, loss / ln 2: bits per token;
    * ``perplexity`` = exp(loss), always per token (inf where that overflows a float).
    """
    return {
        "bits_per_byte": loss / math.log(2) / (bytes_per_token or 1.0),
        "perplexity": math.exp(loss) if loss < 709.0 else math.inf,  # exp(709.8) overflows
    }
