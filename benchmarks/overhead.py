"""Per-trial orchestration overhead: what the machinery costs when a trial does no work.

Every row runs a no-op trial — a runner that returns a minimal TrialResult at once, with an
accuracy and a latency value drawn from a hash of the candidate — so what is timed is the
orchestration alone. The goal set for nas: at most 20 ms per trial locally.

- `LocalExecutor`, round trip: submit -> result with one trial in flight (1 and 2 workers).
- `LocalExecutor`, 2 in flight: wall time of all trials / trials, both workers kept busy.
- nas search loop: `run_search` as `nas search` runs it — ask, sample, dedupe and constraints,
  the trial's rows in a real SQLite database, submit, receive, complete, tell, Pareto front —
  with the local executor running the no-op runner (the script swaps `make_executor` for one
  that passes it). Per trial: the median interval between consecutive completions. A
  diagnostic row keeps the Optuna study in memory (nas' own tables stay in SQLite), which
  splits the loop's cost between Optuna's storage and the rest.
- Optuna alone: ask (6 parameters) + tell of two objectives, in-memory and SQLite storage.
- `RayExecutor`, round trip, and Ray Tune with a no-op function trainable, on a real Ray
  cluster this script starts on 127.0.0.1 (its own ports, temp dir and token) and stops by pid.
  Tune's figure: (fit of 2N trials - fit of N trials) / N, the marginal cost of a trial, beside
  fit(N) / N with the Tuner's start-up.

Torch runs one thread everywhere. Medians over `--trials` trials (`--ray-trials` on Ray,
`--tune-trials` for Tune), after a few untimed warm-up trials.

    python benchmarks/overhead.py                    # all rows
    python benchmarks/overhead.py --trials 500 --skip-ray
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported, here and in workers

import argparse
import contextlib
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from timing import sample_seconds

from nas.evaluate.trial import TrialRequest, TrialResult

WARMUP = 5

SPACE = """\
name: overhead
task: {kind: mqar, vocab_size: 16, seq_len: 24, num_kv_pairs: 3}
model:
  d_model: {choice: [16, 32]}
  n_layers: {choice: [2, 3]}
  token_mixers:
    attention: {heads: {choice: [2, 4]}, kv_heads: {choice: [1, full]}}
    short_conv: {kernel_size: {choice: [2, 3]}}
  hybrid:
    full_attention_ratio: {choice: [0, 0.5, 1]}
    placement: {choice: [interleave, first, last]}
  channel_mixer: {kind: {choice: [mlp, swiglu]}, expansion: 2}
training: {steps: 20, batch_size: 8, lr: {loguniform: [1.0e-3, 1.0e-2]}}
objectives:
  - {name: accuracy, goal: maximize}
  - {name: latency_ms, goal: minimize, batch: 1, seq_len: 32, phase: prefill}
search: {strategy: STRATEGY, seed: 0, population_size: 8}
"""


def noop_trial(request: TrialRequest) -> TrialResult:
    """Train nothing: accuracy and each latency entry from hashes of the candidate, at once."""
    text = request.spec_json.encode()
    metrics = {"accuracy": zlib.crc32(text) / 2**32, "params": 1.0}
    for entry in request.latency:
        metrics[entry["name"]] = 1.0 + zlib.adler32(text) / 2**32
    return TrialResult(metrics=metrics, device=request.device)


def ms(seconds: list[float]) -> float:
    return 1e3 * statistics.median(seconds)


def timed(fn: Callable[[], object], trials: int, warmup: int = WARMUP) -> list[float]:
    """Seconds of each of `trials` calls of fn(), after `warmup` untimed ones."""
    return sample_seconds(fn, trials, warmup)


def in_flight(submit: Callable[[], object], workers: int, trials: int) -> float:
    """Seconds per trial with `workers` trials kept in flight (wall time / trials)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    for future in [submit() for _ in range(WARMUP * workers)]:
        future.result()
    start = time.perf_counter()
    pending, started = {submit() for _ in range(workers)}, workers
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            future.result()
            if started < trials:
                pending.add(submit())
                started += 1
    return (time.perf_counter() - start) / trials


def request() -> TrialRequest:
    return TrialRequest(spec_json='{"overhead": 1}', task={"kind": "none"}, num_threads=1)


# -- nas, local --------------------------------------------------------------------------------


def local_executor_rows(trials: int) -> list[tuple[str, str, float]]:
    from nas.orchestrator.executor import LocalExecutor

    rows = []
    for workers in (1, 2):
        executor = LocalExecutor(workers, threads=1, runner=noop_trial)
        try:
            rows += _executor_rows(executor, f"{workers} worker(s)", trials)
        finally:
            executor.shutdown()
    return rows


def _executor_rows(executor, label: str, trials: int) -> list[tuple[str, str, float]]:
    """Round trip with one trial in flight; with several workers, also all of them busy."""
    system = f"nas {type(executor).__name__}"
    if hasattr(executor, "start"):
        executor.start()
    rows = [(system, f"{label}, round trip",
             ms(timed(lambda: executor.submit(request()).result(), trials)))]
    if executor.workers > 1:
        per_trial = in_flight(lambda: executor.submit(request()), executor.workers, trials)
        rows.append((system, f"{label}, {executor.workers} in flight", 1e3 * per_trial))
    return rows


class _Clock:
    """A Reporter that notes when each trial completes and reports nothing."""

    def __init__(self) -> None:
        self.completed: list[float] = []

    def trial_complete(self, *args, **kwargs) -> None:
        self.completed.append(time.perf_counter())

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def noop_executor() -> Iterator[None]:
    """`run_search` builds its executor with `nas.orchestrator.workers.make_executor`; for the
    benchmark it builds a LocalExecutor running the no-op trial instead (the same one a search
    would get)."""
    from nas.orchestrator import workers
    from nas.orchestrator.executor import LocalExecutor

    real = workers.make_executor
    workers.make_executor = lambda space, options: LocalExecutor(
        options.workers, options.threads, runner=noop_trial)
    try:
        yield
    finally:
        workers.make_executor = real


def search_loop_ms(trials: int, workers: int, strategy: str, storage: str | None = None
                   ) -> float:
    """Median interval between trial completions of a whole `run_search`, on a fresh SQLite
    file, or on `storage` (a PostgreSQL URL: the run is deleted afterwards)."""
    from nas.budget import parse_budget
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.searchspace import loads

    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="nas-overhead") as folder, noop_executor():
        url = storage or f"sqlite:///{folder}/nas.db"
        options = SearchOptions(budget=parse_budget(f"{trials + WARMUP}trials"), storage=url,
                                workers=workers, threads=1, keep_weights="none",
                                name=f"overhead-{uuid.uuid4().hex[:8]}")
        space = loads(SPACE.replace("STRATEGY", strategy), "overhead.yaml")
        outcome = run_search(space, options, clock)
        if storage is not None:
            from nas.store import Store

            Store(storage).delete_run(outcome.run_name)
    intervals = [b - a for a, b in zip(clock.completed, clock.completed[1:], strict=False)]
    return ms(intervals[WARMUP - 1:])


def search_loop_rows(trials: int) -> list[tuple[str, str, float]]:
    rows = [("nas search loop", f"{strategy}, SQLite, {workers} worker(s)",
             search_loop_ms(trials, workers, strategy))
            for strategy in ("nsga2", "tpe") for workers in (1, 2)]
    postgres = os.environ.get("NAS_TEST_POSTGRES_URL")
    if postgres:  # scripts/with_postgres.sh sets it
        rows += [("nas search loop", f"{strategy}, PostgreSQL, 1 worker",
                  search_loop_ms(trials, 1, strategy, storage=postgres))
                 for strategy in ("nsga2", "tpe")]
    return rows


# -- Optuna alone ------------------------------------------------------------------------------


def optuna_ms(trials: int, storage: str | None, sampler_name: str) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = {"nsga2": optuna.samplers.NSGAIISampler(population_size=8, seed=0),
               "tpe": optuna.samplers.TPESampler(seed=0, multivariate=True)}[sampler_name]
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler,
                                storage=storage)

    def ask_tell() -> None:
        trial = study.ask()
        for name in ("d_model", "n_layers", "ratio", "placement", "mixer"):
            trial.suggest_categorical(name, [0, 1, 2])
        lr = trial.suggest_float("lr", 1e-3, 1e-2, log=True)
        study.tell(trial, [lr, 1.0 / lr])

    return ms(timed(ask_tell, trials))


def optuna_rows(trials: int) -> list[tuple[str, str, float]]:
    rows = []
    for sampler in ("nsga2", "tpe"):
        rows.append(("Optuna ask/tell", f"{sampler}, in-memory", optuna_ms(trials, None, sampler)))
        with tempfile.TemporaryDirectory(prefix="nas-overhead") as folder:
            rows.append(("Optuna ask/tell", f"{sampler}, SQLite",
                         optuna_ms(trials, f"sqlite:///{folder}/optuna.db", sampler)))
    return rows


# -- Ray ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2) -> Iterator[str]:
    """A Ray head on 127.0.0.1 (free ports, own temp dir and auth token), connected to from
    this process; yields its address. Stopped by its process group and descendants' pids."""
    token = uuid.uuid4().hex
    os.environ.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
                       "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"})
    import ray  # after the environment: Ray reads its auth mode when imported

    temp_dir = tempfile.mkdtemp(prefix="nasray", dir="/tmp")  # short: socket paths
    port = free_port()
    ports = [f"{flag}={free_port()}" for flag in (
        "--dashboard-port", "--ray-client-server-port", "--node-manager-port",
        "--object-manager-port", "--metrics-export-port", "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port", "--runtime-env-agent-port")]
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
               "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--port={port}",
               f"--num-cpus={num_cpus}", "--num-gpus=0", "--disable-usage-stats",
               f"--temp-dir={temp_dir}", "--object-store-memory=200000000", *ports]
    log = open(Path(temp_dir) / "ray-start.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        _wait_for_port(port, process, Path(log.name))
        ray.init(address=f"127.0.0.1:{port}", logging_level="WARNING", log_to_driver=False)
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop_tree(process)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Ray cluster did not start:\n"
                                   f"{log.read_text()[-3000:]}") from None
            time.sleep(0.5)


def _stop_tree(process: subprocess.Popen) -> None:
    """SIGTERM the cluster's process group, then SIGKILL any descendant still alive."""
    import psutil  # Ray puts its own copy on sys.path

    try:
        tree = [psutil.Process(process.pid)]
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=6)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    psutil.wait_procs(alive, timeout=5)
    process.wait(timeout=5)


def ray_executor_rows(address: str, trials: int) -> list[tuple[str, str, float]]:
    from nas.orchestrator.ray_executor import RayExecutor

    executor = RayExecutor(address, num_cpus_per_trial=1, runner=noop_trial)
    try:
        return _executor_rows(executor, "local cluster", trials)
    finally:
        executor.shutdown()


def noop_trainable(config: dict) -> None:
    from ray import tune

    tune.report({"accuracy": 0.5})


def tune_fit_seconds(samples: int) -> float:
    from ray import tune

    with tempfile.TemporaryDirectory(prefix="nas-overhead") as folder:
        tuner = tune.Tuner(
            tune.with_resources(noop_trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(num_samples=samples, metric="accuracy", mode="max"),
            run_config=tune.RunConfig(storage_path=folder, verbose=0),
        )
        start = time.perf_counter()
        results = tuner.fit()
        seconds = time.perf_counter() - start
    if results.num_errors:
        raise RuntimeError(f"{results.num_errors} Tune trials failed")
    return seconds


def tune_rows(samples: int) -> list[tuple[str, str, float]]:
    once, twice = tune_fit_seconds(samples), tune_fit_seconds(2 * samples)
    return [("Ray Tune", f"no-op trainable, fit({samples}) / {samples}", 1e3 * once / samples),
            ("Ray Tune", f"no-op trainable, marginal ({2 * samples} vs {samples})",
             1e3 * (twice - once) / samples)]


# -- main --------------------------------------------------------------------------------------


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores (load average {load}); Python "
            f"{platform.python_version()}, torch {torch.__version__}, 1 torch thread")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per local row")
    parser.add_argument("--ray-trials", type=int, default=50, help="trials per Ray row")
    parser.add_argument("--tune-trials", type=int, default=10, help="N of the Tune rows")
    parser.add_argument("--skip-ray", action="store_true", help="local rows only")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"machine: {machine()}")
    rows = local_executor_rows(args.trials) + search_loop_rows(args.trials)
    rows += optuna_rows(args.trials)
    if not args.skip_ray:
        with ray_cluster() as address:
            rows += ray_executor_rows(address, args.ray_trials)
            rows += tune_rows(args.tune_trials)
    print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| system | setting | ms per trial |")
    print("|---|---|---:|")
    for system, setting, value in rows:
        print(f"| {system} | {setting} | {value:.2f} |")


if __name__ == "__main__":
    main()
