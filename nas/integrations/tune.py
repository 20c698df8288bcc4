"""A nas search space inside your own Ray Tune pipeline.

Three pieces, each a standard Tune extension point:

- `NasSearcher` (a `ray.tune.search.Searcher`): the space's strategy (`nas.strategies`, the same
  seam `nas search` drives) walking the space's decision graph. Each suggestion is a config
  ``{"nas": {...}}`` carrying the candidate's ArchSpec JSON, the task, the latency requests, the
  seed and the rung schedule. Candidates failing a constraint of the space, or identical (same
  config hash) to one already trained or training, are answered by the strategy without
  training and never reach Tune.
- `nas_trainable(config)`: a function trainable. It builds the model, times it, trains it in
  segments ending at each rung and calls `tune.report` there with the objectives (held-out
  accuracy/loss at that step; latency, known before training) plus `steps`, `nas_rung`,
  `nas_final`, `params` and `arch_hash`. Wrap it with `tune.with_resources` to ask for CPUs/GPUs.
- `MultiObjectiveASHAScheduler` (a `TrialScheduler`): `nas.strategies.halving`'s ASHA rule
  on the full objective vector (non-dominated rank, then crowding). A trial outside its rung's
  quota is STOPPED, as Tune's own ASHA does; it is not paused and promoted later (pausing would
  keep Tune's experiment open until every paused trial is resumed).

User code: a space whose task is a python task, or that declares a mixer by import path, runs
the user's code. Like `nas search --allow-code`, the searcher and the scheduler take such a space
only with `allow_code=True` (or a SearchSpace loaded with `nas.load(path, allow_code=True)`);
otherwise their construction raises the space's one-line SpaceError. The permission travels in
each trial's config (`config["nas"]["allow_code"]`), and `nas_trainable` imports user code only
when it is there.

Tune needs one `metric`/`mode` for its own bookkeeping (`ResultGrid.get_best_result`); the
searcher and scheduler use every objective of the space regardless.

    fidelity = Fidelity(min_steps=100, max_steps=900, reduction=3)
    tuner = tune.Tuner(
        tune.with_resources(nas_trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=NasSearcher(space, fidelity=fidelity),
            scheduler=MultiObjectiveASHAScheduler(space, fidelity),
            num_samples=20, metric="accuracy", mode="max"))

Not thread-safe: Tune's driver calls the searcher and the scheduler from one thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from nas.errors import NasError
from nas.evaluate.trial import TrialRequest
from nas.searchspace import SearchSpace, load
from nas.spec import ArchSpec
from nas.strategies import (
    Complete,
    Duplicate,
    Failed,
    Proposal,
    Pruned,
    SpaceExhausted,
    make_strategy,
    pickling,
)
from nas.strategies.base import ERROR
from nas.strategies.halving import Fidelity, SuccessiveHalving

MAX_RESAMPLES = 200  # answered-without-training samples in a row before the space is exhausted


def _space(space: SearchSpace | str | Path, allow_code: bool = False) -> SearchSpace:
    """The compiled space; SpaceError (one line, naming the key and the module's file) when it
    needs user code and neither `allow_code` nor the SearchSpace given (loaded with
    allow_code=True) grants it. A SearchSpace loaded without permission is reloaded from its
    text with it when `allow_code` is true."""
    from nas.searchspace import loads
    from nas.searchspace.loader import require_trusted

    if not isinstance(space, SearchSpace):
        space = load(space, allow_code=allow_code)
    elif allow_code and not space.allow_code and space.code_refusal is not None:
        space = loads(space.text, space.path, allow_code=True)
    require_trusted(space)
    return space


def rungs_for(steps: int, fidelity: Fidelity | None) -> list[int]:
    """The steps at which a trial of `steps` training steps reports: the fidelity's rungs below
    `steps`, then `steps` itself (just `[steps]` without a fidelity)."""
    below = [r for r in fidelity.rungs if r < steps] if fidelity else []
    return [*below, steps]


class NasSearcher(Searcher):
    """Suggests architectures from a nas space with its strategy (any registered name:
    `nas.strategies.list_strategies()`; default the space's).

    `fidelity` sets the rungs each trial reports at (the scheduler's, if one is used). A trial
    that ends before its last rung (stopped by a scheduler) is told to the strategy as Pruned,
    so low-fidelity values never enter its Pareto front; an errored one as Failed. The outcomes
    are the seam's (`nas.strategies.base`): the strategy maps them to its sampler once, for
    `nas search` and for Tune alike.

    `allow_code` is the user's permission to import and run the code the space names (a python
    task, a mixer by import path), as `nas search --allow-code`: without it (or a SearchSpace
    loaded with it) such a space raises its SpaceError here. Each trial's config carries it.
    """

    def __init__(self, space: SearchSpace | str | Path, *, seed: int | None = None,
                 strategy: str | None = None, fidelity: Fidelity | None = None,
                 eval_examples: int = 1024, study_name: str = "nas-tune",
                 allow_code: bool = False) -> None:
        self.space = _space(space, allow_code)
        self.allow_code = self.space.allow_code  # what the trials may run
        measured = self.space.constraint_measurements()
        if measured:
            raise NasError(f"{self.space.path}: constraints: {measured[0]['name']} is measured "
                           "before training, which `nas search` does and the Ray Tune "
                           "searcher does not yet; fix: run `nas search --ray-address ...`, "
                           "or constrain analytic quantities (params, flops_per_token, "
                           "state_bytes)")
        first = self.space.objectives[0]
        super().__init__(metric=first.name, mode="max" if first.direction == "maximize" else "min")
        self.seed = self.space.config.search.seed if seed is None else seed
        self.strategy = strategy or self.space.strategy
        self.fidelity = fidelity
        self.eval_examples = eval_examples
        self.names = [o.name for o in self.space.objectives]
        self.search_strategy = make_strategy(
            self.strategy, self.space, self.seed,
            population_size=self.space.config.search.population_size, storage=None,
            study_name=study_name)
        self.extra: dict[str, Any] = {}  # constant entries of the Tuner's param_space
        self.live: dict[str, Proposal] = {}  # Tune trial id -> the proposal it trains
        self.answered = {"infeasible": 0, "duplicate": 0}

    @property
    def study(self) -> Any:
        """The Optuna study of an Optuna-backed strategy (read it; the strategy asks and tells)."""
        return self.search_strategy.study

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles the searcher (Tuner construction, experiment checkpoints). Its state
        travels as one blob in which the sampler's thread locks are new ones (see
        nas.strategies.pickling), so any strategy and sampler survive."""
        return {"_state": pickling.dumps(dict(self.__dict__))}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(pickling.loads(state["_state"]))

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        """Take Tune's metric/mode (bookkeeping only) and the param_space's constants, which
        are passed through to every trial's config beside "nas"."""
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        self.extra = dict(config or {})
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        for _ in range(MAX_RESAMPLES):
            try:
                proposal = self.search_strategy.propose()
            except SpaceExhausted:  # an exhaustive strategy (grid) has proposed everything
                return Searcher.FINISHED
            if proposal.answer is not None:  # infeasible or a duplicate: told, never trained
                kind = "duplicate" if isinstance(proposal.answer, Duplicate) else "infeasible"
                self.answered[kind] += 1
                continue
            self.live[trial_id] = proposal
            spec = proposal.spec
            steps = int(spec.training_config["steps"])
            return {**self.extra, "nas": {
                "spec": spec.to_json(), "arch_hash": spec.arch_hash, "number": proposal.number,
                "task": self.space.task,
                "latency": list(self.space.latency_requests()), "seed": self.seed,
                "rungs": rungs_for(steps, self.fidelity), "objectives": self.names,
                "eval_examples": self.eval_examples, "allow_code": self.allow_code,
            }}
        return Searcher.FINISHED  # the space's feasible, untried part looks empty

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        proposal = self.live.pop(trial_id, None)
        if proposal is None:
            return
        values = None if error or not result else _values(result, self.names)
        if values is None:
            outcome = Failed(ERROR, "the trial raised" if error else "it reported no objectives")
        elif not result.get("nas_final"):
            outcome = Pruned(int(result.get("steps", 0)), values)
        else:
            outcome = Complete(values)
        self.search_strategy.tell(proposal.number, outcome)


def _values(result: Mapping[str, Any], names: list[str]) -> list[float] | None:
    try:
        return [float(result[name]) for name in names]
    except (KeyError, TypeError, ValueError):
        return None


def run_by_rungs(request: TrialRequest, rungs: list[int]) -> Iterator[dict[str, Any]]:
    """Build, time and train `request`'s model, yielding its metrics at each rung (the last
    rung is the spec's training steps). Segments resume the optimizer and data stream, so the
    weights at the last rung equal one uninterrupted run's."""

    import torch

    from nas.blocks import build_model
    from nas.evaluate.training import evaluate, train
    from nas.evaluate.trial import (
        latency_options,
        measure_entries,
        refuse_user_code,
        training_options,
    )
    from nas.tasks import make_task

    if request.num_threads is not None:
        torch.set_num_threads(request.num_threads)
    spec = ArchSpec.from_json(request.spec_json)
    refuse_user_code(request, spec)
    task = make_task(request.task, allow_code=request.allow_code)
    recipe = training_options(spec.training_config)
    if rungs[-1] != recipe["steps"] or sorted(set(rungs)) != list(rungs):
        raise ValueError(f"rungs {rungs} must rise to the spec's {recipe['steps']} steps")
    torch.manual_seed(request.seed)
    model = build_model(spec, seed=request.seed, device=request.device)
    known: dict[str, Any] = {"params": float(model.num_params()), "arch_hash": spec.arch_hash}
    if request.latency:
        entries = [latency_options(entry) for entry in request.latency]
        found, _ = measure_entries(model, entries, vocab_size=spec.vocab_size,
                                   seed=request.seed, fingerprint_key="")
        known.update(found)
    resume, train_seconds = None, 0.0
    for index, stop in enumerate(rungs):
        segment = train(model, task, **recipe, seed=request.seed, stop_step=stop, resume=resume)
        resume, train_seconds = segment.resume, train_seconds + segment.train_seconds
        scores = evaluate(model, task, n_examples=request.eval_examples, seed=request.seed)
        yield {**known, **scores, "steps": stop, "nas_rung": index,
               "nas_final": index == len(rungs) - 1, "train_seconds": train_seconds}


def nas_trainable(config: dict[str, Any]) -> None:
    """The Tune function trainable: runs config["nas"] (from NasSearcher), reporting per rung.
    Uses as many torch threads as the trial was given CPUs, and the GPU if it was given one.
    User code (a python task, a mixer by import path) runs only when the config carries the
    searcher's permission, `allow_code`; otherwise the trial fails before anything is built."""
    import ray

    nas = config["nas"]
    assigned = ray.get_runtime_context().get_assigned_resources()
    request = TrialRequest(
        spec_json=nas["spec"], task=nas["task"], latency=tuple(nas.get("latency", ())),
        seed=int(nas.get("seed", 0)), num_threads=max(1, int(assigned.get("CPU", 1))),
        device="cuda" if assigned.get("GPU") else "cpu",
        eval_examples=int(nas.get("eval_examples", 1024)),
        allow_code=nas.get("allow_code") is True,
    )
    start = time.perf_counter()
    for metrics in run_by_rungs(request, list(nas["rungs"])):
        tune.report({**metrics, "trial_seconds": time.perf_counter() - start})


class MultiObjectiveASHAScheduler(FIFOScheduler):
    """ASHA on every objective of the space, deciding at the rungs of `fidelity`.

    Reads each result's `steps`; at a rung step it ranks the trial against all trials that
    reached that rung (see `SuccessiveHalving`) and answers CONTINUE, or STOP for a trial
    outside the quota. Results between rungs, or without the objectives, pass unjudged.
    `allow_code` as for NasSearcher: a space that names user code needs it.
    """

    def __init__(self, space: SearchSpace | str | Path, fidelity: Fidelity, *,
                 allow_code: bool = False) -> None:
        super().__init__()
        compiled = _space(space, allow_code)
        self.names = [o.name for o in compiled.objectives]
        self.rule = SuccessiveHalving(fidelity, compiled.directions,
                                      trained=[not o.known_before_training
                                               for o in compiled.objectives])
        self.fidelity = fidelity
        self._metric = self.names[0]
        self._supports_buffered_results = False  # decide at every rung, not on a batch
        self.decisions = {"continue": 0, "stop": 0, "done": 0}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # Tune's metric/mode are bookkeeping; the space's objectives decide

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        steps = result.get("steps")
        values = _values(result, self.names)
        if steps not in self.fidelity.rungs or values is None:
            return TrialScheduler.CONTINUE
        decision = self.rule.report(trial.trial_id, self.fidelity.rungs.index(steps), values)
        if decision == "pause":
            self.decisions["stop"] += 1
            return TrialScheduler.STOP
        self.decisions[decision] += 1
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.decisions.items())
        return f"nas multi-objective ASHA at steps {list(self.fidelity.rungs)}: {counts}"
