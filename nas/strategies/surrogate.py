"""What the predictor-guided strategy learns with: an architecture encoding and a small ensemble.

`Encoder(space)` turns a candidate into a fixed-length vector of floats:

- per sampled decision of the space (in graph order): a categorical one-hot over its options
  (all zeros where the decision is inactive — a layer past the depth, a knob of an absent
  mixer), a number scaled to [0, 1] over its range (on a log scale for a log domain or a range
  spanning more than a factor of 10) with an "active" bit. For a free layout this is the
  per-layer one-hot encoding of NAS-Bench studies ("which mixer at depth i");
- per token-mixer kind of the space, the share of layers using it (order-free: "how much
  attention"), and the depth.

`Ensemble` is a bootstrap ensemble of one-hidden-layer MLPs (BANANAS, White et al. 2021, uses
the same: an ensemble's spread stands in for a posterior). Written on numpy rather than torch:
it trains on at most a few thousand rows in milliseconds, and the search driver must not start
torch's thread pool beside the workers that train.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nas.searchspace.domains import (
    Choice,
    ContextChoice,
    Derived,
    Fixed,
    FloatRange,
    IntRange,
    WeightedChoice,
)

if TYPE_CHECKING:
    from nas.searchspace import SearchSpace
    from nas.strategies.mutation import Candidate


class Encoder:
    """Fixed-length features of a space's candidates; see the module docstring."""

    def __init__(self, space: SearchSpace) -> None:
        self.columns: list[tuple[str, str, object]] = []  # (decision, "onehot"|"number", extra)
        for name in space.order:
            domain = space.domain(name)
            if isinstance(domain, Derived | Fixed):
                continue
            if isinstance(domain, FloatRange | IntRange) or _numeric(domain):
                low, high = _bounds(domain)
                if high > low:
                    log = low > 0 and (getattr(domain, "log", False) or high / low > 10)
                    self.columns.append((name, "number", (low, high, log)))
                continue
            options = list(domain.values())
            if len(options) > 1:
                self.columns.extend((name, "onehot", option) for option in options)
        self.kinds = sorted({k for k in _mixer_kinds(space)})
        self.width = len(self.columns) + sum(1 for c in self.columns if c[1] == "number") \
            + len(self.kinds) + 1

    def encode(self, candidate: Candidate) -> np.ndarray:
        row: list[float] = []
        actives: list[float] = []
        values = candidate.values
        for name, how, extra in self.columns:
            value = values.get(name)
            if how == "onehot":
                row.append(1.0 if value is not None and value == extra and
                           type(value) is type(extra) else 0.0)
                continue
            low, high, log = extra
            if value is None or isinstance(value, bool):
                row.append(0.0)
                actives.append(0.0)
                continue
            x, lo, hi = ((math.log(value), math.log(low), math.log(high)) if log
                         else (float(value), low, high))
            row.append((x - lo) / (hi - lo))
            actives.append(1.0)
        kinds = candidate.spec.mixer_kinds
        row.extend(actives)
        row.extend(sum(1 for k in kinds if k == kind) / len(kinds) for kind in self.kinds)
        row.append(len(kinds) / 8.0)
        return np.asarray(row, dtype=np.float64)


def _numeric(domain: object) -> bool:
    if not isinstance(domain, Choice | WeightedChoice | ContextChoice):
        return False
    options = list(domain.values())
    return len(options) > 2 and all(isinstance(v, int | float) and not isinstance(v, bool)
                                     for v in options)


def _bounds(domain: object) -> tuple[float, float]:
    if isinstance(domain, FloatRange | IntRange):
        return float(domain.low), float(domain.high)
    options = [float(v) for v in domain.values()]  # type: ignore[attr-defined]
    return min(options), max(options)


def _mixer_kinds(space: SearchSpace) -> list[str]:
    """Every block a layer of the space can record: the keys of `model.token_mixers`, a preset
    as its block (`gla` is linear_attention in the spec)."""
    mixers = space.config.model.token_mixers or {}
    return [space.mixer_blocks.get(kind, kind) for kind in mixers]


class Ensemble:
    """`members` one-hidden-layer MLPs (tanh, `hidden` units), each fit by full-batch Adam on a
    bootstrap resample of the rows (as per-row weights: how often the resample drew the row),
    targets standardized per column. The members train together as one batched network (a
    leading member axis), so a fit costs about what one member's does. `predict` gives every
    member's prediction: shape (members, rows, targets)."""

    def __init__(self, members: int = 5, hidden: int = 32, epochs: int = 200,
                 learning_rate: float = 0.02, weight_decay: float = 1e-4, seed: int = 0) -> None:
        self.members, self.hidden, self.epochs = members, hidden, epochs
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.rng = np.random.default_rng(seed)
        self.net: list[np.ndarray] = []
        self.mean = self.scale = np.zeros(0)

    def fit(self, x: np.ndarray, y: np.ndarray) -> Ensemble:
        """x: (rows, features), y: (rows, targets)."""
        self.mean = y.mean(axis=0)
        self.scale = np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
        z = (y - self.mean) / self.scale  # (rows, targets)
        rows, features = x.shape
        weights = np.stack([np.bincount(self.rng.integers(0, rows, rows), minlength=rows)
                            for _ in range(self.members)]).astype(np.float64)[:, :, None]
        m, h, t = self.members, self.hidden, z.shape[1]
        net = [self.rng.normal(0, 1 / math.sqrt(max(features, 1)), (m, features, h)),
               np.zeros((m, 1, h)),
               self.rng.normal(0, 1 / math.sqrt(h), (m, h, t)),
               np.zeros((m, 1, t))]
        first = [np.zeros_like(p) for p in net]
        second = [np.zeros_like(p) for p in net]
        beta1, beta2 = 0.9, 0.999
        for step in range(1, self.epochs + 1):
            out, hidden = _forward(net, x)  # (m, rows, t), (m, rows, h)
            grad_out = 2 * weights * (out - z) / rows  # d(weighted mean squared error)
            grad_hidden = (grad_out @ net[2].transpose(0, 2, 1)) * (1 - hidden ** 2)
            grads = [x.T @ grad_hidden,
                     grad_hidden.sum(axis=1, keepdims=True),
                     hidden.transpose(0, 2, 1) @ grad_out,
                     grad_out.sum(axis=1, keepdims=True)]
            for i, g in enumerate(grads):
                g = g + self.weight_decay * net[i]
                first[i] = beta1 * first[i] + (1 - beta1) * g
                second[i] = beta2 * second[i] + (1 - beta2) * g * g
                update = first[i] / (1 - beta1 ** step)
                net[i] -= self.learning_rate * update / (np.sqrt(second[i] / (1 - beta2 ** step))
                                                          + 1e-8)
        self.net = net
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(members, rows, targets) in the targets' own units."""
        return _forward(self.net, x)[0] * self.scale + self.mean


def _forward(net: Sequence[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outputs (members, rows, targets), hidden activations (members, rows, hidden)) for
    x: (rows, features)."""
    hidden = np.tanh(x @ net[0] + net[1])  # (rows, f) @ (m, f, h) -> (m, rows, h)
    return hidden @ net[2] + net[3], hidden
