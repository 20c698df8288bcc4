"""A nas search space inside your own Ray Tune pipeline.

    python examples/tune_integration.py --space examples/quickstart.yaml --samples 8

nas supplies the search algorithm (the space's Optuna strategy over its decision graph), the
trainable (build, time, train, report at each rung) and a multi-objective ASHA scheduler; Tune
supplies the rest (resources, placement, `max_failures`, its result files). Point `--address`
at a running cluster (`auto`, `HOST:6379`, `ray://HOST:10001`), or leave it out for a local Ray.
With `--nas-storage sqlite:///nas.db` the experiment is also written into a nas database as a
run, for `nas trials`, `nas pareto`, `nas show` and `nas plot`. A space that runs your own code
(a python task, a mixer by import path) needs `--allow-code`, as `nas search` does. The last line
printed is a JSON summary of the trials.
"""

from __future__ import annotations

import argparse
import json

import ray
from ray import tune

from nas.errors import SpaceError
from nas.integrations.tune import MultiObjectiveASHAScheduler, NasSearcher, nas_trainable
from nas.integrations.tune_store import NasStoreCallback
from nas.orchestrator.fidelity import Fidelity
from nas.searchspace import load
from nas.searchspace.loader import require_trusted


def main(argv: list[str] | None = None) -> tune.ResultGrid:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="examples/quickstart.yaml")
    parser.add_argument("--samples", type=int, default=8, help="Trials Tune starts.")
    parser.add_argument("--address", default=None, help="Ray cluster (default: a local one).")
    parser.add_argument("--cpus-per-trial", type=float, default=1)
    parser.add_argument("--gpus-per-trial", type=float, default=0)
    parser.add_argument("--min-steps", type=int, default=None,
                        help="First rung of multi-fidelity (default: no early stopping).")
    parser.add_argument("--reduction", type=int, default=3)
    parser.add_argument("--storage-path", default=None, help="Where Tune writes its files.")
    parser.add_argument("--nas-storage", default=None,
                        help="Also record the experiment as a run in this nas database.")
    parser.add_argument("--allow-code", action="store_true",
                        help="Import and run the user code the space names (a python task, a "
                        "mixer by import path).")
    args = parser.parse_args(argv)

    try:  # a broken space, or one running code without --allow-code: one line, exit 2
        space = load(args.space, allow_code=args.allow_code)
        require_trusted(space)
    except SpaceError as exc:
        parser.exit(2, f"error: {exc}\n")
    fidelity = scheduler = None
    if args.min_steps:
        steps = space.config.training.steps
        if not isinstance(steps, int):
            parser.error("multi-fidelity needs a fixed `training.steps:` in the space")
        fidelity = Fidelity(args.min_steps, steps, args.reduction)
        scheduler = MultiObjectiveASHAScheduler(space, fidelity, allow_code=args.allow_code)
    if args.address:
        ray.init(address=args.address)

    searcher = NasSearcher(space, fidelity=fidelity, allow_code=args.allow_code)
    callbacks = [NasStoreCallback(searcher, storage=args.nas_storage)] if args.nas_storage else []
    tuner = tune.Tuner(
        tune.with_resources(nas_trainable, {"cpu": args.cpus_per_trial,
                                            "gpu": args.gpus_per_trial}),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler,
            num_samples=args.samples, metric="accuracy", mode="max"),
        run_config=tune.RunConfig(name=f"nas-{space.name}", storage_path=args.storage_path,
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  callbacks=callbacks, verbose=1),
    )
    results = tuner.fit()

    rows = []
    for result in results:
        metrics = result.metrics or {}
        rows.append({key: metrics.get(key) for key in
                     ("arch_hash", "steps", "nas_final", *(o.name for o in space.objectives))}
                    | {"error": str(result.error) if result.error else None})
    for row in sorted(rows, key=lambda r: -(r.get("accuracy") or 0)):
        print(f"{row['arch_hash'] or '-':>16}  steps {row['steps'] or 0:>5}  " + "  ".join(
            f"{o.name} {row[o.name]:.4g}" for o in space.objectives if row[o.name] is not None))
    print(json.dumps({"trials": rows}))
    return results


if __name__ == "__main__":
    main()
