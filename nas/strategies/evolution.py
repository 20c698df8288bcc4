"""`evolution`: multi-objective regularized (aging) evolution over the decision graph.

Real et al. (2019) showed on image classifiers, and the tabular NAS benchmarks since
(NAS-Bench-101/201/301) confirmed, that evolution which ages its population out — the oldest
member dies, not the worst — beats random search and most model-based methods at equal budget,
because it keeps mutating near good architectures without being captured by one early lucky
result. This is that algorithm with several objectives:

- the population is the `population_size` most recent trained trials (by trial number: the
  oldest leave first, whatever their scores);
- a parent is the winner of a tournament among `sample_size` members drawn at random, the
  winner being the best by non-dominated rank within the population, then crowding distance
  (NSGA-II's order, so the population keeps spreading along the front);
- the child is one mutation of the parent on the compiled decision graph
  (`nas.strategies.mutation`: one layer's mixer, a swap of two layers — which moves attention
  — a layer inserted or removed, a width or knob moved to a neighbouring value), never a
  configuration proposed before.

The first `population_size` trials are random. Options: `population_size` (default 16),
`sample_size` (default a quarter of the population, at least 2).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from nas.strategies.graph_search import GraphSearchStrategy
from nas.strategies.pareto import preference_order

if TYPE_CHECKING:
    from nas.searchspace import SearchSpace
    from nas.strategies.mutation import Candidate


class EvolutionStrategy(GraphSearchStrategy):
    """Aging evolution with a multi-objective tournament; see the module docstring."""

    def __init__(self, space: SearchSpace, seed: int, population_size: int = 16,
                 sample_size: int | None = None, **options: Any) -> None:
        super().__init__(space, seed, population_size, **options)
        self.sample_size = max(2, int(sample_size or self.population_size // 4))

    def _next(self, number: int, rng: random.Random) -> Candidate:
        population = sorted(self.results.values(), key=lambda r: r.number)
        population = population[-self.population_size:]
        order = preference_order([r.values for r in population], self.directions)
        place = {index: position for position, index in enumerate(order)}
        for _ in range(4):  # a parent whose neighbourhood is used up: hold another tournament
            drawn = rng.sample(range(len(population)), min(self.sample_size, len(population)))
            parent = population[min(drawn, key=place.__getitem__)]
            child = self.descend(parent, number, rng)
            if child is not None:
                return child
        return super()._next(number, rng)
