"""Helpers shared by the search-space tests: a small space file around a `model:` section, and
a brute-force count that knows nothing of the DAG's conditions."""

from __future__ import annotations

import itertools
import textwrap

import networkx as nx
import optuna

from nas.searchspace.count import identity
from nas.searchspace.domains import Derived


def space_text(model: str, training: str = "{steps: 10, batch_size: 4, lr: 0.01}") -> str:
    return textwrap.dedent("""\
        name: lang
        task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}
        model:
        %s
        training: %s
        objectives:
          - {name: accuracy, goal: maximize}
    """) % (textwrap.indent(textwrap.dedent(model), "  "), training)


def brute_force_identities(space) -> set[str]:
    """Distinct architectures over the full product of every sampled (non-training) domain:
    no condition is consulted; computed values are computed from the full assignment; assemble
    reads only what the layout needs."""
    graph = space.graph
    order = [n for n in nx.topological_sort(graph) if not n.startswith("training.")]
    sampled = [n for n in order if not isinstance(space.domain(n), Derived)]
    found = set()
    for combo in itertools.product(*(list(space.domain(n).values()) for n in sampled)):
        values = dict(zip(sampled, combo, strict=True))
        for name in order:
            domain = space.domain(name)
            if isinstance(domain, Derived):
                values[name] = domain.compute(values)
        found.add(identity(space.assemble(values)))
    return found


def sample_specs(space, n: int, seed: int = 0):
    """(specs, trial params) of `n` random samples."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs, params = [], []
    for _ in range(n):
        trial = study.ask()
        specs.append(space.sample(trial))
        params.append(dict(trial.params))
        study.tell(trial, 0.0)
    return specs, params
