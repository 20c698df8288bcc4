"""`grid`: every distinct configuration of a finite space, once each, in a seeded random order.

The strategy that builds a tabular benchmark (train the whole space) and the honest baseline
"random search without replacement". It enumerates the space through its compiled decision
graph (`nas.searchspace.count.configurations`: only decisions active given their parents, and
assignments that assemble to one configuration — architecture and training recipe, the
`config_hash` — counted once), shuffles them with the search's seed, and proposes them in that
order. A budget smaller than the space therefore trains a uniform random subset; a budget
large enough trains all of it, and then the search ends ("every configuration proposed").

It learns nothing from outcomes. A failed or infeasible configuration is not proposed again
(the search's own retries and `nas resume` retrain lost trials by enqueueing them). A space
with a continuous decision (`uniform`, `loguniform`), or more than 200,000 assignments, is
refused when the strategy is made, with the fix.

Why our own rather than Optuna's GridSampler: that one takes a flat product of parameter
values, so in a conditional space (per-layer mixers exist only up to `n_layers`, knobs only
where their mixer is chosen) it would either ask for inactive combinations or need the space
flattened by hand; and it does not know that different assignments can be one architecture.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from nas.strategies.base import Replay, SpaceExhausted, Told
from nas.strategies.in_memory import InMemoryStrategy

if TYPE_CHECKING:
    from nas.searchspace import SearchSpace
    from nas.searchspace.domains import Suggester


class GridStrategy(InMemoryStrategy):
    """Exhaustive enumeration in a seeded order; see the module docstring. Options (accepted
    from every search, unused): `population_size`."""

    needs_finite_space = True

    def __init__(self, space: SearchSpace, seed: int, **options: Any) -> None:
        from nas.searchspace.count import configurations

        super().__init__(space, seed, **options)
        try:
            order = configurations(space)
        except ValueError as exc:
            from nas.errors import SpaceError

            problem, fix = exc.args
            raise SpaceError(space.path, "search.strategy",
                             f"grid needs a finite space: {problem}", fix) from None
        random.Random(self.seed).shuffle(order)
        self.order = order  # decision values, one per configuration, in proposal order
        self._cursor = 0  # order[:cursor] have been considered
        self._used: set[str] = set()  # config hashes proposed so far

    def _suggester(self, number: int) -> Suggester:
        while self._cursor < len(self.order):
            params = self.order[self._cursor]
            self._cursor += 1
            config = self.space.assemble(params).config_hash
            if config not in self._used:
                self._used.add(config)
                return Replay(params)
        raise SpaceExhausted(f"every one of the space's {len(self.order):,} configurations "
                             "has been proposed")

    def _learn(self, told: Told) -> None:
        if told.params:  # a rebuild: what the run proposed is used
            try:
                self._used.add(self.space.sample(Replay(told.params)).config_hash)
            except KeyError:  # its sampling was interrupted: params are a prefix
                pass
