"""`nas export RUN/NUMBER --out DIR`: one trained trial as a folder anyone can use.

    arch.json          the ArchSpec (nas.ArchSpec.from_json reads it back)
    model.safetensors  the trained weights, as the search kept them (checksum verified)
    metrics.json       objective values, every metric, the curve, latencies and how they were
                       measured, the training recipe, the task and the held-out evaluation
    model.py           the model rebuilt with only PyTorch installed (see nas.export.bundle)

A DUPLICATE trial exports the trial it duplicates (same architecture and recipe).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.evaluate.measurement import METRICS, metric_of
from nas.spec import ArchSpec
from nas.store.artifacts import digest
from nas.store.store import COMPLETE, DUPLICATE, RunRecord, Store, TrialRecord

FILES = ("arch.json", "model.safetensors", "metrics.json", "model.py")
EVAL_EXAMPLES = 1024  # TrialRequest.eval_examples: the held-out split the search scored


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    run: str
    number: int  # the trial asked for
    source: int  # the trial whose weights were exported (differs for a DUPLICATE)
    files: tuple[Path, ...]


def export_trial(store: Store, run_ref: str | int, number: int, out: str | Path) -> ExportResult:
    """Write FILES for trial `number` of a run into `out` (created; existing files replaced).
    NasError when the trial did not complete or its weights were not kept."""
    run = store.run(run_ref)
    trial = store.trial(run.id, number)
    source = trial
    if trial.state == DUPLICATE and trial.duplicate_of is not None:
        source = store.trial(run.id, trial.duplicate_of)
    if source.state != COMPLETE:
        raise NasError(f"trial {run.name}/{number} is {trial.state}: only completed trials have "
                       "trained weights")
    artifact = store.artifact(run.id, source.number)
    if artifact is None:
        repeats = (f"trial {run.name}/{number} repeats {run.name}/{source.number}, which"
                   if source is not trial else f"trial {run.name}/{number}")
        raise NasError(
            f"{repeats} kept no weights: by default a search keeps only "
            "the weights of its Pareto front (this trial is not, or left it); set "
            "`search: {keep_weights: all}` in the space to keep every trial's")
    if not artifact.file.is_file():
        raise NasError(f"the weights of {run.name}/{source.number} should be at {artifact.file} "
                       "but are not (moved or deleted?); set NAS_ARTIFACTS to their folder")
    spec = ArchSpec.from_json(json.dumps(source.spec))
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / "model.safetensors"
        shutil.copyfile(artifact.file, weights)
        if digest(weights) != (artifact.bytes, artifact.sha256):
            weights.unlink()
            raise NasError(f"the weights file {artifact.file} does not match the checksum "
                           "recorded for it; it was changed after the search")
        (folder / "arch.json").write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
        info = export_metadata(store, run, trial, source, artifact.sha256)
        (folder / "metrics.json").write_text(json.dumps(info, indent=2) + "\n")
        from nas.export.bundle import model_source

        (folder / "model.py").write_text(model_source(spec), encoding="utf-8")
    except OSError as exc:
        raise NasError(f"cannot write the export to {folder}: {exc.strerror or exc}") from None
    return ExportResult(folder, run.name, number, source.number,
                        tuple(folder / name for name in FILES))


def export_metadata(store: Store, run: RunRecord, trial: TrialRecord, source: TrialRecord,
                    sha256: str) -> dict[str, Any]:
    """What metrics.json holds: everything needed to judge the model and to re-score it."""
    task, latency = _space_settings(run)
    return {
        "run": run.name,
        "trial": trial.number,
        "weights_from_trial": source.number,
        "state": trial.state,
        "arch_hash": source.arch_hash,
        "config_hash": source.config_hash,
        "short_form": source.short_form,
        "params": source.params,
        "objectives": run.objectives,
        "values": source.values,
        "pareto": source.pareto,
        "metrics": source.metrics,
        "latency": {"measured_on": source.device, "requests": latency,
                    "values": {r["name"]: (source.metrics or {}).get(r["name"])
                               for r in latency},
                    "units": {r["name"]: METRICS[metric_of(r)][0] for r in latency}},
        "training": dict(source.spec.get("training", {})),
        "task": task,
        "evaluation": {"split": "held-out", "seed": run.seed, "examples": EVAL_EXAMPLES},
        "curve": [{"step": s, "name": n, "value": v}
                  for s, n, v in store.curve(run.id, source.number)],
        "device": source.device,
        "device_seconds": source.device_seconds,
        "weights_sha256": sha256,
        "versions": run.versions,
    }


def _space_settings(run: RunRecord) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(task config, latency requests) of the run's stored space; (None, []) if this nas can
    no longer read that space."""
    from nas.searchspace import loads

    try:
        space = loads(run.space_text, run.space_path)
    except NasError:
        return None, []
    return dict(space.task), [dict(r) for r in space.latency_requests()]


def read_metrics(folder: str | Path) -> dict[str, Any]:
    """metrics.json of an export folder."""
    return json.loads((Path(folder) / "metrics.json").read_text())
