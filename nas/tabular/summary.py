"""What a tabular benchmark holds, in numbers: the figures of its data card (`nas table show`).

Per objective: the distribution of the configurations' seed-mean values (quantiles), and the
noise between seeds — the median and 90th percentile of the absolute difference between two
trainings of one configuration, and the share of configurations whose trainings differ by more
than the spread of the middle half of the table (where seed noise alone can reorder them). Plus
the size of the table and the device-seconds its trainings cost.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from nas.stats import quantile
from nas.tabular.table import Table

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class ObjectiveSummary:
    """One objective over the table: quantiles of the per-configuration means (at QUANTILES)
    and, where configurations were trained more than once, the seed noise."""

    name: str
    direction: str
    quantiles: tuple[float, ...]
    noise_median: float | None = None  # median |training 1 - training 2| over configurations
    noise_p90: float | None = None
    noisy_share: float | None = None  # share whose two trainings differ by more than the IQR


@dataclass(frozen=True)
class TableSummary:
    name: str
    configurations: int
    trainings: int
    device_seconds: float
    objectives: list[ObjectiveSummary] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "configurations": self.configurations,
                "trainings": self.trainings, "device_seconds": self.device_seconds,
                "source": self.source,
                "objectives": [{"name": o.name, "direction": o.direction,
                                "quantiles": dict(zip(map(str, QUANTILES), o.quantiles,
                                                      strict=True)),
                                "noise_median": o.noise_median, "noise_p90": o.noise_p90,
                                "noisy_share": o.noisy_share} for o in self.objectives]}


def summarize(table: Table) -> TableSummary:
    """The figures of `table` (see the module docstring)."""
    entries = list(table.entries.values())
    out = []
    for objective in table.objectives:
        name = objective["name"]
        means, gaps = [], []
        for entry in entries:
            seen = [t.values[name] for t in entry.trainings if name in t.values]
            if not seen:
                continue
            means.append(statistics.fmean(seen))
            if len(seen) > 1:
                gaps.append(abs(seen[0] - seen[1]))
        if not means:
            continue
        quantiles = tuple(quantile(means, q) for q in QUANTILES)
        spread = quantiles[3] - quantiles[1]
        varies = any(g > 0 for g in gaps)
        out.append(ObjectiveSummary(
            name, objective["direction"], quantiles,
            noise_median=statistics.median(gaps) if varies else None,
            noise_p90=quantile(gaps, 0.9) if varies else None,
            noisy_share=(sum(g > spread for g in gaps) / len(gaps)) if varies else None))
    return TableSummary(
        table.name, len(entries), sum(len(e.trainings) for e in entries),
        sum(t.device_seconds for e in entries for t in e.trainings), out, dict(table.source))
