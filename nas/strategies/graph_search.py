"""`GraphSearchStrategy`: what nas's architecture-aware strategies share.

Evolution, local search and the predictor-guided strategy all keep the same state — every
trained result as a candidate of the decision graph (`nas.strategies.mutation.Candidate`) with
its objective values, and every configuration already proposed — start the same way (random
samples until `population_size` trials exist), and never propose a configuration twice. A
subclass says only how the next candidate is made once results exist (`_next`).

Per-trial randomness comes from a generator seeded by (seed, trial number), not from one stream,
so a strategy rebuilt from a run's history draws exactly what the live one would have drawn
(the determinism contract of `nas.strategies.base`). What a candidate was made from — its
parent's trial number and the mutation — is kept as the trial's private state (`lineage`), so
the store records lineage and a rebuild knows which front members were explored.

Only final results inform these strategies: a Pruned or Paused trial's low-fidelity values do
not enter the population (see `nas.strategies.base.Pruned`), a Failed one is "no information"
and an Infeasible one is never proposed again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.strategies.base import Complete, Replay, Told, Values
from nas.strategies.in_memory import InMemoryStrategy
from nas.strategies.mutation import Candidate, decode, mutate, sample
from nas.strategies.pareto import preference_order

if TYPE_CHECKING:
    from nas.searchspace import SearchSpace
    from nas.searchspace.domains import Suggester

NOVELTY_TRIES = 64  # attempts at a configuration not proposed before, per way of making one


@dataclass(frozen=True)
class Result:
    """A trained trial: its number, the candidate it trained and its final objective values."""

    number: int
    candidate: Candidate
    values: Values


class GraphSearchStrategy(InMemoryStrategy):
    """Base of the strategies that move on the decision graph; see the module docstring.

    Options: `population_size` (default 16): random trials before the first guided one, and
    the population evolution keeps."""

    def __init__(self, space: SearchSpace, seed: int, population_size: int = 16,
                 **options: Any) -> None:
        super().__init__(space, seed, **options)
        self.population_size = max(2, int(population_size))
        self.results: dict[int, Result] = {}  # trained to the end, by trial number
        self.lineage: dict[int, dict[str, Any]] = {}  # trial -> {"parent": n, "mutation": k}
        self._seen: set[str] = set()  # config hashes of every proposal
        self._candidates: dict[int, Candidate] = {}  # what this strategy proposed, by number

    # -- for subclasses ----------------------------------------------------------------------
    def _next(self, number: int, rng: random.Random) -> Candidate:
        """The candidate for trial `number` once results exist; may set
        `self.lineage[number]`. Default: a random new configuration."""
        return self.novel(lambda: sample(self.space, rng))

    def ranked(self) -> list[Result]:
        """Every result, best first (non-dominated rank, then crowding distance)."""
        results = sorted(self.results.values(), key=lambda r: r.number)
        order = preference_order([r.values for r in results], self.directions)
        return [results[i] for i in order]

    def novel(self, make: Callable[[], Candidate], tries: int = NOVELTY_TRIES) -> Candidate:
        """The first of `tries` calls of `make` whose configuration was never proposed; else
        its last (which the search then answers as a duplicate)."""
        for _ in range(tries):
            candidate = make()
            if candidate.config not in self._seen:
                return candidate
        return candidate

    def child(self, parent: Result, rng: random.Random,
              tries: int = NOVELTY_TRIES) -> tuple[str, Candidate] | None:
        """(mutation, a new configuration one mutation from `parent`); None if `tries`
        mutations found none."""
        for _ in range(tries):
            kind, candidate = mutate(self.space, parent.candidate, rng)
            if candidate.config not in self._seen:
                return kind, candidate
        return None

    def descend(self, parent: Result, number: int, rng: random.Random) -> Candidate | None:
        """`child` of `parent` as trial `number`'s candidate, its lineage noted."""
        found = self.child(parent, rng)
        if found is None:
            return None
        self.lineage[number] = {"parent": parent.number, "mutation": found[0]}
        return found[1]

    # -- InMemoryStrategy ----------------------------------------------------------------------
    def _suggester(self, number: int) -> Suggester:
        rng = random.Random(f"{type(self).__name__}:{self.seed}:{number}")
        if number < self.population_size or not self.results:
            candidate = self.novel(lambda: sample(self.space, rng))
        else:
            candidate = self._next(number, rng)
        self._seen.add(candidate.config)
        self._candidates[number] = candidate
        return Replay(candidate.params)

    def _private(self, number: int) -> Mapping[str, Any]:
        return self.lineage.get(number, {})

    def _learn(self, told: Told) -> None:
        if told.private.get("parent") is not None:  # a rebuild: the lineage comes back
            self.lineage[told.number] = dict(told.private)
        candidate = self._candidates.get(told.number)
        if candidate is None and told.params:
            try:
                candidate = decode(self.space, told.params)
            except KeyError:  # its sampling was interrupted: params are a prefix
                return
            self._candidates[told.number] = candidate
        if candidate is None:
            return
        self._seen.add(candidate.config)
        if isinstance(told.outcome, Complete):
            self.results[told.number] = Result(told.number, candidate, told.outcome.values)
