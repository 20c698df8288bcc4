"""Where the full-attention layers of a hybrid stack go.

Pure arithmetic, shared by the sampler and anything that must predict a layout (tests, counts).
"""

from __future__ import annotations

import math

PLACEMENTS = ("interleave", "first", "last")


def attention_count(n_layers: int, ratio: float) -> int:
    """How many of `n_layers` are full attention at `ratio` (share of layers).

    Rounds half up, then keeps a hybrid a hybrid: a ratio strictly between 0 and 1 gives at
    least one attention layer and, where there are two or more layers, at least one other.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"full_attention_ratio must be in [0, 1], got {ratio}")
    count = math.floor(ratio * n_layers + 0.5)
    if 0.0 < ratio and count == 0:
        count = 1
    if ratio < 1.0 and count == n_layers and n_layers > 1:
        count = n_layers - 1
    return count


def attention_positions(n_layers: int, count: int, placement: str) -> tuple[int, ...]:
    """Indices (0 = nearest the embedding) of the `count` attention layers.

    interleave: spread evenly, the last layer always attention (n=4, k=2 -> 1, 3: C-A-C-A);
    first: the bottom `count` layers; last: the top `count` layers.
    """
    if not 0 <= count <= n_layers:
        raise ValueError(f"cannot place {count} attention layers in {n_layers}")
    if placement == "first":
        return tuple(range(count))
    if placement == "last":
        return tuple(range(n_layers - count, n_layers))
    if placement == "interleave":
        return tuple((i + 1) * n_layers // count - 1 for i in range(count)) if count else ()
    raise ValueError(f"unknown placement {placement!r}; known: {', '.join(PLACEMENTS)}")
