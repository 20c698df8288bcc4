"""`predictor`: predictor-guided search (BANANAS-style) with several objectives.

After `population_size` random trials, each proposal:

1. fits a bootstrap ensemble of small MLPs (`nas.strategies.surrogate`) from the architecture
   encoding of every trained result to its objectives — all but `params`, which is computed
   exactly from the architecture (the model on the meta device), as it is known before training;
2. makes candidates the way BANANAS found works best, by mutating good architectures:
   `mutations` children of each of the `parents` best results (non-dominated rank, then
   crowding), plus `randoms` random configurations, none proposed before;
3. scores each candidate by its expected hypervolume improvement over the current front, the
   expectation taken over the ensemble's members (each member's prediction is one plausible
   world; Monte-Carlo EHVI), in objectives normalized to the range seen so far; where no
   candidate is predicted to improve the front, by how close the members put it to the front
   (the additive epsilon it would need), so the search still moves toward it;
4. proposes the best-scoring candidate (ties: the earlier made).

Options: `population_size` (16), `parents` (6), `mutations` (8), `randoms` (8),
`members` (5).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.strategies.graph_search import GraphSearchStrategy
from nas.strategies.mutation import Candidate, sample
from nas.strategies.pareto import hypervolume, pareto_mask
from nas.strategies.surrogate import Encoder, Ensemble

if TYPE_CHECKING:
    from nas.searchspace import SearchSpace

EXACT = "params"  # an objective of this name is the architecture's parameter count


class PredictorStrategy(GraphSearchStrategy):
    """Ensemble-predicted expected hypervolume improvement over mutations of the front; see
    the module docstring."""

    def __init__(self, space: SearchSpace, seed: int, population_size: int = 16,
                 parents: int = 6, mutations: int = 8, randoms: int = 8, members: int = 5,
                 **options: Any) -> None:
        super().__init__(space, seed, population_size, **options)
        self.parents, self.mutations, self.randoms = int(parents), int(mutations), int(randoms)
        self.members = int(members)
        self.encoder = Encoder(space)
        names = [o.name for o in space.objectives]
        self.exact = [i for i, o in enumerate(space.objectives)
                      if o.name == EXACT and not o.is_measured]
        self.predicted = [i for i in range(len(names)) if i not in self.exact]
        self._features: dict[int, np.ndarray] = {}  # trial number -> encoding, cached

    def _next(self, number: int, rng: random.Random) -> Candidate:
        candidates = self._candidates_for(number, rng)
        if not candidates:
            return super()._next(number, rng)
        scores = self._scores([c for c, _ in candidates], number)
        best = int(np.argmax(scores))
        candidate, parent = candidates[best]
        if parent is not None:
            self.lineage[number] = {"parent": parent, "mutation": "predicted"}
        return candidate

    # -- candidates ----------------------------------------------------------------------------
    def _candidates_for(self, number: int, rng: random.Random) -> list[tuple[Candidate,
                                                                             int | None]]:
        """(candidate, parent trial or None), new configurations, each once."""
        made: list[tuple[Candidate, int | None]] = []
        configs: set[str] = set()
        for parent in self.ranked()[:self.parents]:
            for _ in range(self.mutations):
                found = self.child(parent, rng, tries=4)
                if found is not None and found[1].config not in configs:
                    configs.add(found[1].config)
                    made.append((found[1], parent.number))
        for _ in range(self.randoms):
            candidate = self.novel(lambda: sample(self.space, rng), tries=4)
            if candidate.config not in self._seen and candidate.config not in configs:
                configs.add(candidate.config)
                made.append((candidate, None))
        return made

    # -- scoring -------------------------------------------------------------------------------
    def _scores(self, candidates: list[Candidate], number: int) -> np.ndarray:
        results = sorted(self.results.values(), key=lambda r: r.number)
        x = np.stack([self._encoded(r.number, r.candidate) for r in results])
        y = np.asarray([r.values for r in results], dtype=np.float64)
        worlds = np.zeros((self.members, len(candidates), y.shape[1]))
        if self.predicted:
            ensemble = Ensemble(self.members, seed=hash_seed(self.seed, number))
            ensemble.fit(x, y[:, self.predicted])
            worlds[:, :, self.predicted] = ensemble.predict(
                np.stack([self.encoder.encode(c) for c in candidates]))
        for i in self.exact:
            worlds[:, :, i] = [_params(c) for c in candidates]
        return expected_improvement(y, worlds, self.directions)

    def _encoded(self, number: int, candidate: Candidate) -> np.ndarray:
        if number not in self._features:
            self._features[number] = self.encoder.encode(candidate)
        return self._features[number]


def hash_seed(seed: int, number: int) -> int:
    return (int(seed) * 1_000_003 + int(number)) % (2 ** 32)


def _params(candidate: Candidate) -> float:
    from nas.searchspace.constraints import param_count

    return float(param_count(candidate.spec))


def expected_improvement(observed: np.ndarray, worlds: np.ndarray,
                         directions: list[str] | tuple[str, ...]) -> np.ndarray:
    """Per candidate, the mean over worlds of its hypervolume improvement over the front of
    `observed` (rows, objectives); `worlds`: (members, candidates, objectives) predictions.
    Objectives are minimized and scaled to the observed range first; the reference point is
    1.1 in every scaled objective. Where no candidate improves in any world, minus the mean
    additive epsilon each needs to reach the front instead (all negative, larger is closer)."""
    sign = np.asarray([-1.0 if d == "maximize" else 1.0 for d in directions])
    low, high = (observed * sign).min(axis=0), (observed * sign).max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (observed * sign - low) / span
    front = scaled[pareto_mask(scaled.tolist(), ["minimize"] * len(sign))]
    reference = [1.1] * len(sign)
    minimize = ["minimize"] * len(sign)
    base = hypervolume(front.tolist(), minimize, reference)
    points = (worlds * sign - low) / span  # (members, candidates, objectives)
    gains = np.zeros(points.shape[:2])
    for m in range(points.shape[0]):
        for c in range(points.shape[1]):
            point = points[m, c]
            if np.all(point < 1.1) and not any(np.all(f <= point) for f in front):
                gains[m, c] = hypervolume([*front.tolist(), point.tolist()], minimize,
                                          reference) - base
    if gains.max() > 0:
        return gains.mean(axis=0)
    epsilon = np.asarray([[min(float(np.max(point - f)) for f in front) for point in member]
                          for member in points])
    return -epsilon.mean(axis=0)
