"""`local`: local search around the current Pareto front.

White et al. (2020, "Local search is state of the art for NAS benchmarks") found that simply
trying the neighbours of the best architecture found so far matches or beats far more elaborate
methods on the tabular benchmarks, where neighbouring architectures have correlated scores. With
several objectives "the best" is the non-dominated front, so:

- the centre is the front member (over every trained result) from which the fewest candidates
  were made so far — ties go to the more isolated member (crowding distance), so the whole
  front is explored rather than one end of it;
- the candidate is one mutation of the centre (`nas.strategies.mutation`) not proposed before;
- a centre whose neighbourhood yields nothing new after many tries is exhausted; when every
  front member is, the search restarts from a random configuration (a local optimum).

The first `population_size` trials are random (options: `population_size`, default 16).
"""

from __future__ import annotations

import random
from collections import Counter

from nas.strategies.graph_search import GraphSearchStrategy
from nas.strategies.mutation import Candidate
from nas.strategies.pareto import pareto_mask


class LocalSearchStrategy(GraphSearchStrategy):
    """Local search from the front's least-explored member; see the module docstring."""

    def _next(self, number: int, rng: random.Random) -> Candidate:
        ranked = self.ranked()  # best first: the front, most isolated first, leads
        on_front = pareto_mask([r.values for r in ranked], self.directions)
        made = Counter(entry.get("parent") for entry in self.lineage.values())
        centres = sorted((r for r, on in zip(ranked, on_front, strict=True) if on),
                         key=lambda r: made[r.number])  # stable: crowding breaks ties
        for centre in centres:
            child = self.descend(centre, number, rng)
            if child is not None:
                return child
        return super()._next(number, rng)  # every centre exhausted: restart at random
