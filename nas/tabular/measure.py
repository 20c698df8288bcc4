"""Hardware costs of a table's architectures, timed in one quiet pass (`nas table measure`).

A table is built by trainings that ran two at a time beside other work, so their own timings (and
their device-seconds) carry the machine's load of the moment. The latency a searcher trades
accuracy against is a property of the architecture, so it is measured separately, afterwards,
for every entry, the same way for all: the untrained model (weights do not change a timing), one
torch thread (the default: no OpenMP pool to be disturbed), each phase through nas's own timing
(`nas.evaluate.measurement.take`: warm-up, repeats until the median settles, contention checked
before and during, retried when contended).

Stability: every entry is timed `passes` times, each pass visiting the entries in a new seeded
order (so a slow minute of the machine does not fall on one family of architectures), and the
figure kept is the median over passes. Per phase an entry gets, in `costs`:

    latency_{phase}_ms             the median over passes of the pass medians (ms per pass:
                                   prefill = a forward over seq_len tokens, decode = one token
                                   after a seq_len context, train_step = forward + backward +
                                   optimizer step at the recipe's batch)
    latency_{phase}_ms_spread      the relative disagreement between passes ((max - min) / median),
                                   or the in-pass spread when there is one pass
    latency_{phase}_ms_contended   1.0 when some pass was taken on a contended machine, else 0.0

and, with train_step timed, `train_seconds_steady` = steps × the step time: what the training
would cost on this machine undisturbed (the recorded device-seconds stay as they were). The
table's `source.latency` says how, where and when (threads, passes, seq_len, device, torch).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from nas.tabular.table import Entry, Table

PHASES = ("prefill", "decode", "train_step")


def task_seq_len(table: Table) -> int:
    """The sequence length the table's task trains at: `task.seq_len`, else the longest of its
    levels (an mqar_sweep), else nas's default for measured objectives."""
    import yaml

    from nas.searchspace.compile import DEFAULT_SEQ_LEN

    try:
        task = (yaml.safe_load(table.space) or {}).get("task") or {}
    except yaml.YAMLError:
        task = {}
    if isinstance(task.get("seq_len"), int):
        return int(task["seq_len"])
    levels = [lv.get("seq_len") for lv in task.get("levels") or [] if isinstance(lv, dict)]
    lengths = [int(n) for n in levels if isinstance(n, int)]
    return max(lengths) if lengths else DEFAULT_SEQ_LEN


def measure_table(table: Table, phases: Sequence[str] = PHASES, threads: int = 1,
                  passes: int = 2, seq_len: int | None = None, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> Table:
    """`table` with every entry's latency costs (module docstring) measured on this CPU.
    `progress(done, total)` is called after each entry of each pass."""
    import torch

    from nas.blocks.model import build_model
    from nas.evaluate.device import describe_device, device_fingerprint
    from nas.evaluate.measurement import take

    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases:
        raise ValueError(f"phases must be among {', '.join(PHASES)}, got {list(phases)}")
    if passes < 1 or threads < 1:
        raise ValueError("passes and threads must be >= 1")
    seq_len = seq_len or task_seq_len(table)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    timings: dict[str, dict[str, list[tuple[float, float, bool]]]] = {
        key: {phase: [] for phase in phases} for key in table.entries}
    total, done = passes * len(table.entries), 0
    try:
        for number in range(passes):
            order = sorted(table.entries)
            random.Random(seed * 1000 + number).shuffle(order)
            for key in order:
                entry = table.entries[key]
                model = build_model(entry.spec, seed=seed)
                for phase in phases:
                    batch = int(entry.spec.training_config.get("batch_size", 1)) \
                        if phase == "train_step" else 1
                    found = take(model, {"phase": phase, "batch": batch, "seq_len": seq_len},
                                 vocab_size=entry.spec.vocab_size, seed=seed,
                                 fingerprint_key="table", cache={})
                    timings[key][phase].append((found.value, found.spread,
                                                bool(found.contended)))
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        torch.set_num_threads(before)
    entries = {key: _with_costs(entry, timings[key]) for key, entry in table.entries.items()}
    source = dict(table.source)
    source["latency"] = {"threads": threads, "passes": passes, "seq_len": seq_len,
                         "phases": list(phases), "device": describe_device("cpu"),
                         "fingerprint": device_fingerprint("cpu"),
                         "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    return replace(table, entries=entries, source=source)


def _with_costs(entry: Entry, phases: dict[str, list[tuple[float, float, bool]]]) -> Entry:
    costs: dict[str, Any] = dict(entry.costs)
    for phase, taken in phases.items():
        values = [value for value, _, _ in taken]
        middle = statistics.median(values)
        if len(values) > 1:
            spread = (max(values) - min(values)) / middle if middle > 0 else 0.0
        else:
            spread = taken[0][1]
        name = f"latency_{phase}_ms"
        costs[name] = middle
        costs[f"{name}_spread"] = spread
        costs[f"{name}_contended"] = 1.0 if any(c for _, _, c in taken) else 0.0
        if phase == "train_step" and "steps" in entry.spec.training_config:
            costs["train_seconds_steady"] = middle * int(entry.spec.training_config["steps"]) / 1e3
    return replace(entry, costs=costs)
