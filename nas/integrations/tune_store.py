"""`NasStoreCallback`: a Ray Tune experiment over a nas space, written into a nas database.

Add it to a Tuner that uses `NasSearcher` (``RunConfig(callbacks=[NasStoreCallback(searcher)])``)
and the experiment becomes a nas run like any other: `nas runs`, `nas trials`, `nas pareto`,
`nas show`, `nas plot` and `nas export` read it. Tune's driver calls the callback, so the
database has one writer, as in `nas search`, and no Tune worker touches it.

What is recorded: a run (the space's text and hash, the searcher's strategy and seed, a budget of
`num_samples` trials) opened at setup and finished at the experiment's end; each trial under its
Optuna trial number, RUNNING while it reports, with its objectives and metrics at every rung (the
curve), COMPLETE when it reaches its last rung, PRUNED when a scheduler stopped it earlier, FAIL
with Tune's error when it raised. Device-seconds are Tune's ``time_total_s`` times the GPUs the
trial held (at least one device), charged to the ledger per report. The run's Optuna study is
the searcher's own (in memory), so `nas resume` cannot continue such a run.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from nas.failures import DIVERGED, ERROR
from nas.integrations.tune import NasSearcher
from nas.spec import ArchSpec
from nas.store import PRUNED, RUNNING, Store

# Result keys Tune adds to every report: bookkeeping, not metrics of the trial.
_TUNE_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "config", "nas_rung", "nas_final", "experiment_tag",
})


class NasStoreCallback(Callback):
    """Writes a Tune experiment driven by `searcher` into the nas database at `storage`, as the
    run `name` (default: the space's name with the next free number)."""

    def __init__(self, searcher: NasSearcher, storage: str = "sqlite:///nas.db",
                 name: str | None = None) -> None:
        self.searcher, self.storage, self.name = searcher, storage, name
        self.store: Store | None = None
        self.run_id: int | None = None
        self.run_name: str | None = None
        self._seconds: dict[str, float] = {}  # trial id -> device-seconds charged so far
        self._curves: dict[str, list[tuple[int, str, float]]] = {}
        self._last: dict[str, dict[str, Any]] = {}  # trial id -> its latest result

    # -- the experiment ----------------------------------------------------------------------
    def setup(self, stop: Any = None, num_samples: int | None = None,
              total_num_samples: int | None = None, **info: Any) -> None:
        from nas.orchestrator.versions import versions

        space = self.searcher.space
        samples = total_num_samples or num_samples or 0
        self.store = Store(self.storage)
        run = self.store.create_run(
            name=self.name, base_name=space.name, space_path=space.path, space_text=space.text,
            space_hash=space.space_hash,
            objectives=[{"name": o.name, "direction": o.direction} for o in space.objectives],
            strategy=self.searcher.strategy, seed=self.searcher.seed,
            budget=f"{samples}trials", budget_unit="trials",
            budget_amount=float(samples), versions=versions(), host=socket.gethostname(),
            driver_pid=os.getpid())
        self.run_id, self.run_name = run.id, run.name

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        if self.store is None:
            return
        errors = sum(1 for t in trials if t.status == Trial.ERROR)
        message = f"Ray Tune experiment of {len(trials)} trials ended"
        self.store.finish_run(self.run_id, "finished",
                              message + (f"; {errors} errored" if errors else ""))

    # -- trials ------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        nas = trial.config.get("nas")
        if nas is None or self.store is None:
            return
        spec = ArchSpec.from_json(nas["spec"])
        self.store.start_trial(self.run_id, nas["number"], spec, worker=f"tune {trial.trial_id}")
        self._seconds[trial.trial_id], self._curves[trial.trial_id] = 0.0, []

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict[str, Any], **info: Any) -> None:
        if trial.trial_id not in self._seconds:
            return
        self._last[trial.trial_id] = result
        metrics = _metrics(result)
        names = self.searcher.names
        self._curves[trial.trial_id] += [
            (int(result.get("steps", 0)), name, metrics[name]) for name in names
            if name in metrics]
        if result.get("nas_final"):
            return  # recorded once, complete, in on_trial_complete
        device_seconds, wall_seconds = self._charge(trial, result)
        self.store.record_rung(
            self.run_id, _number(trial), state=RUNNING, values=_objectives(metrics, names),
            metrics=metrics, curve=self._curves[trial.trial_id], device=_device(trial),
            device_seconds=device_seconds, wall_seconds=wall_seconds)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        result = self._last.pop(trial.trial_id, None)
        if trial.trial_id not in self._seconds or result is None:
            return
        metrics = _metrics(result)
        if not result.get("nas_final"):  # a scheduler stopped it at a rung
            self.store.set_trial_state(self.run_id, _number(trial), PRUNED)
            return
        device_seconds, wall_seconds = self._charge(trial, result)
        self.store.complete_trial(
            self.run_id, _number(trial), values=_objectives(metrics, self.searcher.names),
            metrics=metrics, curve=self._curves.pop(trial.trial_id), device=_device(trial),
            device_seconds=device_seconds, wall_seconds=wall_seconds)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        if trial.trial_id not in self._seconds:
            return
        result = self._last.pop(trial.trial_id, None) or {}
        device_seconds, wall_seconds = self._charge(trial, result)
        error = _error_text(trial)  # Tune's traceback text: the exception object is gone
        self.store.fail_trial(
            self.run_id, _number(trial), error=error, device_seconds=device_seconds,
            wall_seconds=wall_seconds, device=_device(trial),
            failure=DIVERGED if "TrialDiverged" in error else ERROR)

    def _charge(self, trial: Trial, result: dict[str, Any]) -> tuple[float, float]:
        """(device-seconds, wall seconds) of the trial since its last charge, from Tune's
        ``time_total_s``; device-seconds count every GPU held (a CPU trial is one device)."""
        wall = float(result.get("time_total_s", 0.0))
        charged = self._seconds.get(trial.trial_id, 0.0)
        self._seconds[trial.trial_id] = max(wall, charged)
        delta = max(0.0, wall - charged)
        return delta * _devices(trial), delta


def _number(trial: Trial) -> int:
    return int(trial.config["nas"]["number"])


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a report, without Tune's bookkeeping."""
    return {k: float(v) for k, v in result.items()
            if k not in _TUNE_KEYS and isinstance(v, int | float) and not isinstance(v, bool)}


def _objectives(metrics: dict[str, float], names: list[str]) -> dict[str, float]:
    return {name: metrics[name] for name in names if name in metrics}


def _gpus(trial: Trial) -> float:
    resources = getattr(getattr(trial, "placement_group_factory", None),
                        "required_resources", None) or {}
    return float(resources.get("GPU", 0))


def _devices(trial: Trial) -> float:
    return max(1.0, _gpus(trial))


def _device(trial: Trial) -> str:
    return "cuda (Ray Tune)" if _gpus(trial) else "cpu (Ray Tune)"


def _error_text(trial: Trial) -> str:
    error = getattr(trial, "error_file", None)
    if error and os.path.exists(error):
        with open(error, encoding="utf-8", errors="replace") as handle:
            lines = [line for line in handle.read().splitlines() if line.strip()]
        if lines:
            return f"Ray Tune: {lines[-1][:500]}"
    return "Ray Tune: the trial raised"
