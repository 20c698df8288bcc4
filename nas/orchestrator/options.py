"""What a search is asked to do: `SearchOptions`, the settings `nas search` / `nas resume` (and
`nas.search` / `nas.resume`) pass to `nas.orchestrator.search` beside the space. A field left
None takes the space's own setting (or the run's, when resuming)."""

from __future__ import annotations

from dataclasses import dataclass

from nas.budget import Budget


@dataclass(frozen=True)
class SearchOptions:
    budget: Budget | None  # None only when resuming: the run's own budget
    storage: str
    name: str | None = None
    seed: int | None = None  # overrides the space's search.seed
    workers: int | None = None  # None: a local worker per GPU (1 without); Ray: the cluster decides
    threads: int | None = None  # torch threads per worker; default: cores / workers
    keep_weights: str | None = None  # front | all | none; default: the space's search.keep_weights
    ray_address: str | None = None  # trials on this Ray cluster; default: search.ray_address
    num_cpus_per_trial: float | None = None  # Ray only; default: the space's, else 1
    num_gpus_per_trial: float | None = None  # Ray only; default: the space's, else 0
    # resume: import the user code the stored space names (a new search takes the permission
    # its space was loaded with); either way each trial request carries it to its worker
    allow_code: bool = False
