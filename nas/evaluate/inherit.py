"""Weight inheritance: a child architecture starts from its parent's trained weights where they fit.

Evolution, local search and the predictor make each candidate by mutating a trained one (its
*parent*: `nas.strategies.mutation`). One mutation leaves most of the network as it was — one
layer's mixer changed, a layer inserted or removed, two swapped — so most of the parent's
trained layers fit the child unchanged. `inherit(model, child, parent, weights)` copies them
into the freshly built child before it trains:

- layers are matched by aligning the two stacks: the longest common subsequence of layers that
  are the same (token mixer with the same knobs, channel mixer with the same knobs), so a layer
  inserted or removed shifts the match instead of breaking it, and swapped layers keep one of
  the two matches;
- a matched layer's tensors are copied when name and shape agree (all of them, for equal
  layers at equal width); the embedding, positions, final norm and head likewise;
- nothing is copied across widths (`d_model` differs: no tensor has the same shape), and the
  optimizer starts fresh.

This is a warm start, not function preservation: a new layer is freshly initialised and sits in
the residual stream beside inherited ones. What was inherited is reported (`Inherited`) and
stored with the trial's metrics, beside the parent named in its strategy state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from nas.spec import ArchSpec

BLOCKS = "blocks."


@dataclass(frozen=True)
class Inherited:
    """What a child took from its parent: the layer pairs matched (child index, parent index),
    the tensors copied and the share of the child's parameters they hold."""

    layers: tuple[tuple[int, int], ...]
    tensors: int
    share: float


def aligned_layers(child: ArchSpec, parent: ArchSpec) -> list[tuple[int, int]]:
    """(child layer, parent layer) pairs of the longest common subsequence of equal layers
    (same token and channel mixer with the same knobs); [] across widths."""
    if child.d_model != parent.d_model:
        return []
    a, b = list(child.layers), list(parent.layers)
    longest = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]  # LCS lengths of suffixes
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            longest[i][j] = longest[i + 1][j + 1] + 1 if a[i] == b[j] else \
                max(longest[i + 1][j], longest[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif longest[i + 1][j] >= longest[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def inherit(model: torch.nn.Module, child: ArchSpec, parent: ArchSpec,
            weights: str | Path) -> Inherited:
    """Copy into `model` (built from `child`) the tensors of `parent`'s weights file that fit
    (module docstring); returns what was copied."""
    saved = load_file(str(weights))  # name -> tensor, on the CPU
    pairs = aligned_layers(child, parent)
    source = {c: p for c, p in pairs}
    state = model.state_dict()
    copied: set[str] = set()
    with torch.no_grad():
        for name, tensor in state.items():
            origin = _origin(name, source)
            found = None if origin is None else saved.get(origin)
            if found is None or found.shape != tensor.shape or found.dtype != tensor.dtype:
                continue
            tensor.copy_(found)
            copied.add(name)
    parameters = dict(model.named_parameters())  # a tied head is one parameter, named once
    total = sum(p.numel() for p in parameters.values())
    share = sum(p.numel() for n, p in parameters.items() if n in copied) / total if total else 0.0
    return Inherited(tuple(pairs), len(copied), share)


def _origin(name: str, source: dict[int, int]) -> str | None:
    """The parent's name for the child's tensor `name`: a matched layer's renumbered, a
    model-level tensor's own; None for an unmatched layer."""
    if not name.startswith(BLOCKS):
        return name
    index, _, rest = name[len(BLOCKS):].partition(".")
    parent = source.get(int(index))
    return None if parent is None else f"{BLOCKS}{parent}.{rest}"
