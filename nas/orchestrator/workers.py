"""The workers a search runs on: which executor (local processes or a Ray cluster), how many
workers and threads, and the separate latency-measurement worker of `search.measure`.

The checks (`check_parallelism`, `check_measure_device`) raise a one-line NasError before any
run is created or process started; `start_workers` starts them, or stops what it started and
raises."""

from __future__ import annotations

import os

from nas.errors import NasError
from nas.orchestrator.executor import LocalExecutor, default_workers
from nas.orchestrator.executor_base import Executor
from nas.orchestrator.measurer import Measurer
from nas.orchestrator.options import SearchOptions
from nas.searchspace import SearchSpace

MAX_RAY_WORKERS = 10_000  # trials in flight on a cluster
MAX_THREADS = 1024


def max_local_workers() -> int:
    """The most local worker processes a search may start: each imports torch (~150 MB) and
    trains, so far more processes than cores only thrash (or exhaust memory)."""
    return max(8, 4 * (os.cpu_count() or 1))


def check_parallelism(space: SearchSpace, options: SearchOptions) -> None:
    """NasError (one line, with the fix) for --workers / --threads beyond what this machine
    (or a Ray cluster) can use, before any run is created or process started."""
    local = not (options.ray_address or space.config.search.ray_address)
    limit = max_local_workers() if local else MAX_RAY_WORKERS
    if options.workers is not None and options.workers > limit:
        where = (f"this machine has {os.cpu_count()} cores; at most {limit} local workers"
                 if local else f"at most {limit:,} trials in flight on a Ray cluster")
        raise NasError(f"--workers {options.workers:,} is too many ({where}); fix: pass "
                       f"--workers {min(limit, os.cpu_count() or 1) if local else limit} or fewer")
    if options.threads is not None and options.threads > MAX_THREADS:
        raise NasError(f"--threads {options.threads:,} is too many (at most {MAX_THREADS}); "
                       f"fix: pass --threads {os.cpu_count() or 1} or fewer")
    keep = options.keep_weights or space.config.search.keep_weights
    if space.config.search.inherit and keep == "none":
        raise NasError(f"{space.path}: search.inherit needs the trained weights of the parents, "
                       "but keep_weights is none; fix: keep_weights: front (parents' weights "
                       "stay until the search ends) or remove search.inherit")


def make_executor(space: SearchSpace, options: SearchOptions) -> Executor:
    """ReplayExecutor for a space with search.evaluate.table; RayExecutor when a Ray address is
    given (flag, else the space's search.ray_address); else LocalExecutor. With Ray, `workers`
    > 1 caps the trials in flight; 1 (the default) lets the cluster's size decide."""
    search = space.config.search
    if search.evaluate is not None:  # answered from a tabular benchmark (check_replay first)
        from nas.orchestrator.replay_executor import ReplayExecutor, table_path

        return ReplayExecutor.open(table_path(space.path, search.evaluate.table),
                                   workers=options.workers or 1, charge=search.evaluate.charge)
    address = options.ray_address or search.ray_address
    if not address:
        workers = options.workers or default_workers()
        return LocalExecutor(workers, options.threads or _training_threads(space, workers))
    from nas.orchestrator.ray_executor import RayExecutor

    cpus = options.num_cpus_per_trial or search.num_cpus_per_trial
    gpus = search.num_gpus_per_trial if options.num_gpus_per_trial is None \
        else options.num_gpus_per_trial
    return RayExecutor(address, cpus, gpus,
                       workers=options.workers if (options.workers or 0) > 1 else None)


def _training_threads(space: SearchSpace, workers: int) -> int | None:
    """Local training threads when none are given: with a CPU measurement worker its threads
    are kept out of the share, so timing does not compete with training for cores (None: the
    executor's default)."""
    measure = space.config.search.measure
    if measure is None or measure.device != "cpu":
        return None
    return max(1, ((os.cpu_count() or 1) - measure.threads) // max(1, workers))


def check_measure_device(space: SearchSpace) -> None:
    """NasError when `search.measure.device` names a CUDA device this machine lacks."""
    measure = space.config.search.measure
    if measure is None or not measure.device.startswith("cuda"):
        return
    import torch

    index = int(measure.device.partition(":")[2] or 0)
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise NasError(f"{space.path}: search.measure.device: {measure.device} is not a CUDA "
                       f"device of this machine ({torch.cuda.device_count()} found); use cpu, "
                       "or run the search where that device is")


def make_measurer(space: SearchSpace) -> Measurer | None:
    """The separate latency-measurement worker of `search.measure`, or None (latency is then
    timed by the training workers)."""
    measure = space.config.search.measure
    return None if measure is None else Measurer(measure.device, measure.threads)


def start_workers(space: SearchSpace, options: SearchOptions) -> tuple[Executor, Measurer | None]:
    """(executor, measurer or None). If either cannot start (a Ray cluster that cannot be
    reached or cannot place a trial, ...) the one started is stopped and the error raised; the
    caller (`nas.orchestrator.search`) marks the run failed with the reason."""
    executor = None
    try:
        executor = make_executor(space, options)
        return executor, make_measurer(space)
    except BaseException:
        if executor is not None:
            executor.shutdown(cancel=True)
        raise
