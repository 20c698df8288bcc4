"""Which token mixer each layer gets: the three layout forms of a space file, as pure functions.

A layout turns the values of its decisions into one mixer kind per layer (bottom first):

* hybrid (``model.hybrid``): a share of full-attention layers (`full_attention_ratio`) placed by
  `placement`, the rest filled by one `other` mixer;
* pattern (``model.layout.pattern``): a string of mixer letters (``LLLA``) repeated `repeat`
  times;
* free (``model.layout.free``): every layer chooses its own mixer (``model.layers.<i>.mixer``),
  optionally weighted by per-depth priors.

Nothing here knows about YAML or Optuna; the compiler declares the decisions, these functions
read their values, so the sampler, the counter and the tests share one definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nas.spec import MIXER_LETTERS, Scalar

PLACEMENTS = ("interleave", "first", "last", "middle", "sandwich")
ATTENTION = "attention"
N_LAYERS = "model.n_layers"
RATIO, PLACEMENT, OTHER = (
    "model.hybrid.full_attention_ratio",
    "model.hybrid.placement",
    "model.hybrid.other",
)
PATTERN, REPEAT = "model.layout.pattern", "model.layout.repeat"
PATTERN_SEPARATORS = "-_ "  # `C-A` (as nas prints stacks) reads like `CA`


def layer_decision(index: int, part: str = "mixer") -> str:
    """The name of layer `index`'s own decision: `model.layers.3.mixer` or `.channel_mixer`."""
    return f"model.layers.{index}.{part}"


# ------------------------------------------------------------------------------------------------
# hybrid: ratio and placement
# ------------------------------------------------------------------------------------------------


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
    """Indices (0 = nearest the embedding) of the `count` attention layers, ascending.

    interleave: spread evenly, the top layer always attention (n=4, k=2 -> 1, 3: C-A-C-A);
        consecutive gaps differ by at most one layer;
    first: the bottom `count` layers; last: the top `count` layers;
    middle: a contiguous run centred in the stack; when it cannot sit exactly in the centre it
        sits one layer lower (n=4, k=1 -> 1);
    sandwich: both ends, bottom first: count // 2 at the bottom, the rest at the top (k=1 is
        the top layer alone, as `last`; n=6, k=3 -> 0, 4, 5).

    Different placements may give the same layers (n=2, k=1: interleave = last = sandwich);
    the ArchSpecs are then equal, so they hash and count as one architecture.
    """
    if not 0 <= count <= n_layers:
        raise ValueError(f"cannot place {count} attention layers in {n_layers}")
    if placement == "first":
        return tuple(range(count))
    if placement == "last":
        return tuple(range(n_layers - count, n_layers))
    if placement == "interleave":
        return tuple((i + 1) * n_layers // count - 1 for i in range(count)) if count else ()
    if placement == "middle":
        start = (n_layers - count) // 2
        return tuple(range(start, start + count))
    if placement == "sandwich":
        bottom = count // 2
        return (*range(bottom), *range(n_layers - (count - bottom), n_layers))
    raise ValueError(f"unknown placement {placement!r}; known: {', '.join(PLACEMENTS)}")


def hybrid_kinds(values: Mapping[str, Scalar]) -> tuple[str, ...]:
    """Mixer per layer for a hybrid layout: attention where placed, `other` elsewhere."""
    n_layers = int(values[N_LAYERS])
    count = attention_count(n_layers, float(values[RATIO]))
    positions = set(attention_positions(n_layers, count, str(values.get(PLACEMENT, "last"))))
    other = str(values[OTHER]) if count < n_layers else ""
    return tuple(ATTENTION if i in positions else other for i in range(n_layers))


# ------------------------------------------------------------------------------------------------
# pattern: letters
# ------------------------------------------------------------------------------------------------


def letter_table(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Letter -> mixer kind: nas.spec.MIXER_LETTERS inverted, then `overrides` on top."""
    table = {letter: kind for kind, letter in MIXER_LETTERS.items()}
    table.update(overrides or {})
    return table


def pattern_letters(pattern: str) -> str:
    """The letters of a pattern, separators removed: 'C-A' -> 'CA'."""
    return "".join(ch for ch in pattern if ch not in PATTERN_SEPARATORS)


def pattern_kinds(pattern: str, repeat: int, letters: Mapping[str, str]) -> tuple[str, ...]:
    """Mixer per layer of `pattern` repeated `repeat` times. KeyError for an unknown letter."""
    return tuple(letters[ch] for ch in pattern_letters(pattern)) * repeat


@dataclass(frozen=True)
class PatternLayout:
    """Reads `model.layout.pattern` and `model.layout.repeat` (or derives the repeat from a
    fixed depth: n_layers / len(pattern))."""

    letters: Mapping[str, str]
    fixed_depth: int | None = None

    def repeat(self, values: Mapping[str, Scalar]) -> int:
        if REPEAT in values:
            return int(values[REPEAT])
        if self.fixed_depth is not None:
            return self.fixed_depth // len(pattern_letters(str(values[PATTERN])))
        return 1

    def depth(self, values: Mapping[str, Scalar]) -> int:
        return len(pattern_letters(str(values[PATTERN]))) * self.repeat(values)

    def kinds(self, values: Mapping[str, Scalar]) -> tuple[str, ...]:
        return pattern_kinds(str(values[PATTERN]), self.repeat(values), self.letters)


# ------------------------------------------------------------------------------------------------
# free: a choice per layer, with optional per-depth priors
# ------------------------------------------------------------------------------------------------


def free_kinds(values: Mapping[str, Scalar]) -> tuple[str, ...]:
    """Mixer per layer of a free layout: each layer's own decision."""
    return tuple(str(values[layer_decision(i)]) for i in range(int(values[N_LAYERS])))


def depth_weights(options: Sequence[str], priors: Mapping[str, tuple[float, float]],
                  index: int, n_layers: int) -> tuple[float, ...]:
    """Probability of each option at layer `index` of `n_layers`.

    A prior (bottom, top) is interpolated linearly over depth: layer 0 gets `bottom`, the top
    layer `top` (a one-layer stack gets `bottom`). Options without a prior share what is left
    equally; when every option has one, the weights are normalised to sum to one.
    """
    t = index / (n_layers - 1) if n_layers > 1 else 0.0
    given = {kind: low + (high - low) * t for kind, (low, high) in priors.items()}
    rest = [kind for kind in options if kind not in given]
    if rest:
        share = max(0.0, 1.0 - sum(given.values())) / len(rest)
        weights = [given.get(kind, share) for kind in options]
    else:
        total = sum(given.values())
        weights = [given[kind] / total for kind in options]
    return tuple(weights)
