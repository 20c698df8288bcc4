"""Searching from Python: `nas.search(space, budget=...)` and `nas.resume(run_name)`.

    import nas
    run = nas.search("examples/quickstart.yaml", budget="6m")   # blocks until it ends
    run.to_pandas()                                              # the trials, read back
    run = nas.resume(run.name, budget="10m")                     # the same run, continued

The same search as `nas search` / `nas resume` (nas.orchestrator.search does the work), with
the CLI's defaults; the result is the run's `RunResults` (nas.store.api), read from the
database once the search has ended. Errors a user can cause are NasError subclasses with a
one-line message, as the CLI prints them. This module imports nothing heavy itself: torch and
Optuna load when a search starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nas.errors import BudgetError, NasError, SpaceError, brief, did_you_mean

if TYPE_CHECKING:
    from nas.budget import Budget
    from nas.searchspace import SearchSpace
    from nas.store.api import RunResults

PROGRESS = ("rich", "quiet", "jsonl", "off")
KEEP_WEIGHTS = ("front", "all", "none")
DICT_PATH = "<dict>"  # how a space given as a dict is named in messages and in the database
TEXT_PATH = "<string>"  # likewise for YAML text
MAX_SEED = 2**32 - 1  # as search.seed
# YAML written from a dict: keys in their order, lists of plain values on one line
DUMP: dict[str, Any] = {"sort_keys": False, "allow_unicode": True, "default_flow_style": None,
                        "width": 100}


def search(space: str | os.PathLike[str] | Mapping[str, Any] | SearchSpace, *,
           budget: str | Budget | None = None, storage: str | None = None,
           workers: int | None = None, threads: int | None = None, strategy: str | None = None,
           seed: int | None = None, name: str | None = None, progress: str | None = None,
           allow_code: bool = False, keep_weights: str | None = None) -> RunResults:
    """Search `space` until `budget` is spent (or Ctrl-C); return the run's results.

    `space` is one of:
    - a path (`pathlib.Path`, or a `str` without a newline that does not start with `{`) to a
      YAML space file;
    - YAML text (a `str` holding a newline, or a one-line flow mapping `{name: ..., ...}`);
    - a dict with the same structure as the YAML (`name`, `task`, `model`, ...);
    - a `SearchSpace` already loaded with `nas.load`.
    Nothing in the space runs unless `allow_code=True` (the CLI's `--allow-code`): a space
    naming user code (a python task, a mixer by import path) is refused without it.

    The other arguments are the CLI's options, with its defaults: `budget` ("6m", "2h",
    "2cpuh", "100gpuh", "20trials"; default the space's `budget:`), `storage` (a database URL;
    default $NAS_STORAGE, else the space's `storage:`, else sqlite:///nas.db in the working
    directory), `workers` and `threads` (local worker processes and torch threads each),
    `seed` (overrides `search.seed`), `name` (the run's name; default SPACE_NAME-N) and
    `keep_weights` (front, all or none; default the space's `search.keep_weights`).
    `strategy` replaces the space's `search.strategy` by another registered strategy
    (`nas.strategies.list_strategies()`); the space is validated again with it and stored with
    the run as changed, so `nas resume` continues with it.

    `progress`: "rich" (a live panel), "quiet" (a plain line per finished trial, then a
    summary), "jsonl" (one JSON object per event) on stdout, or "off" (nothing); None, the
    default, is the CLI's: rich on a terminal, else quiet (so in a notebook or a log, quiet).
    Unless "off", the CLI's notes go to stderr first: the space's notes (legal, probably
    unintended settings), a busy machine, a gpuh budget on a machine without a GPU.

    Blocks until the search ends: the budget is spent, the space is exhausted, or Ctrl-C (the
    first lets running trials finish, the second cancels them). Every trial is written to the
    database as it ends; the returned `RunResults` (`run.pareto()`, `run.trials()`,
    `run.trial(n)`, `run.to_pandas()`) reads it. A run stopped by Ctrl-C (or SIGTERM) is
    returned too: `run.record.status` is "finished" or "interrupted", with `run.record.message`
    saying why it stopped.

    Raises SpaceError (a bad space), BudgetError (a bad or missing budget), StoreError (a
    database that cannot be used) or NasError (any other bad argument), each with a one-line
    message and a fix; for bad arguments, before anything is written. A fault after the run
    was created (a database that stops accepting writes, an unreachable Ray cluster) marks the
    run failed and is raised (`nas.resume` takes it up again). KeyboardInterrupt escapes only
    while the search starts up or from a third Ctrl-C during its cleanup; the run is then
    marked interrupted.
    """
    reporter = _reporter(progress)
    _check_options(workers=workers, threads=threads, seed=seed, name=name,
                   keep_weights=keep_weights)
    given_url = _storage(storage)
    compiled = _space(space, allow_code)
    if strategy is not None:
        compiled = _with_strategy(compiled, strategy)
    from nas.searchspace.loader import require_trusted

    require_trusted(compiled)  # before anything runs or is written
    budget = budget if budget is not None else compiled.config.budget
    if budget is None:
        raise BudgetError("no budget: pass budget= (e.g. '30m', '2cpuh', '20trials') or set "
                          f"`budget:` in {compiled.path}")
    parsed = _budget(budget)
    if progress != "off":
        for note in compiled.notes:
            print(f"note: {compiled.path}: {note}", file=sys.stderr)
        _warn_busy()
        if parsed.device_kind == "gpu":
            import torch

            if not torch.cuda.is_available():
                print("note: no GPU here; the time of CPU workers is charged against the gpuh "
                      "budget", file=sys.stderr)
    from nas.orchestrator.search import SearchOptions, run_search
    from nas.store.engine import DEFAULT_URL

    url = given_url or compiled.config.storage or DEFAULT_URL
    options = SearchOptions(budget=parsed, storage=url, name=name, seed=seed, workers=workers,
                            threads=threads, keep_weights=keep_weights, allow_code=allow_code)
    outcome = run_search(compiled, options, reporter)
    return _results(url, outcome.run_name)


def resume(run_name: str | int, *, storage: str | None = None,
           budget: str | Budget | None = None, workers: int | None = None,
           threads: int | None = None, progress: str | None = None,
           allow_code: bool = False) -> RunResults:
    """Take up the run `run_name` (its name, or id) again, in the database where it is; return
    its results. Like `nas resume`.

    The run continues with the space and strategy stored with it; its finished trials are kept
    and count against `budget`, a new total (default: the run's own), so a larger budget
    extends a finished run. Trials a crashed or interrupted driver left unfinished are trained
    again. `storage` defaults to $NAS_STORAGE, else sqlite:///nas.db in the working directory;
    `workers`, `threads`, `progress` and `allow_code` are as for `nas.search` (`allow_code`:
    import the user code the stored space names).

    Blocks until the search ends; returns the run's `RunResults`, finished or interrupted (see
    `run.record.status`). Raises StoreError (no such run or database, a run another driver is
    still searching), BudgetError, SpaceError or NasError, each with a one-line message.
    """
    from nas.orchestrator.search import SearchOptions, resume_search
    from nas.store.engine import DEFAULT_URL

    if isinstance(run_name, bool) or not isinstance(run_name, str | int):
        raise NasError(f"run_name must be a run's name or id, not {brief(run_name)}")
    parsed = _budget(budget) if budget is not None else None
    reporter = _reporter(progress)
    _check_options(workers=workers, threads=threads)
    url = _storage(storage) or DEFAULT_URL
    if progress != "off":
        _warn_busy()
    options = SearchOptions(budget=parsed, storage=url, workers=workers, threads=threads,
                            allow_code=allow_code)
    outcome = resume_search(run_name, options, reporter)  # type: ignore[arg-type]
    return _results(url, outcome.run_name)


def _space(space: Any, allow_code: bool) -> SearchSpace:
    """`space` (path, YAML text, dict or SearchSpace) loaded and validated."""
    from nas.searchspace import SearchSpace, load, loads

    if isinstance(space, SearchSpace):
        if allow_code and not space.allow_code:  # the permission given here counts
            return loads(space.text, space.path, allow_code=True)
        return space
    if isinstance(space, os.PathLike):
        return load(space, allow_code=allow_code)
    if isinstance(space, str):
        if "\n" in space or space.lstrip().startswith("{"):
            return loads(space, TEXT_PATH, allow_code=allow_code)
        return load(space, allow_code=allow_code)
    if isinstance(space, Mapping):
        return loads(_yaml_text(space), DICT_PATH, allow_code=allow_code)
    raise NasError(f"space must be a path, YAML text, a dict or a SearchSpace, not "
                   f"{type(space).__name__}")


def _yaml_text(data: Mapping[str, Any]) -> str:
    """A dict as YAML text (tuples as lists); SpaceError for a value YAML cannot hold."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(tuple, Dumper.represent_list)
    try:
        return yaml.dump(dict(data), Dumper=Dumper, **DUMP)
    except yaml.representer.RepresenterError as exc:
        bad = exc.args[-1] if exc.args else None
        raise SpaceError(DICT_PATH, "", f"a value of type {type(bad).__name__} cannot be "
                         "written as YAML", "use only dicts, lists, strings, numbers, booleans "
                         "and None") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise SpaceError(DICT_PATH, "", f"cannot be written as YAML ({type(exc).__name__})",
                         "use only dicts, lists, strings, numbers, booleans and None") from None


def _with_strategy(space: SearchSpace, strategy: str) -> SearchSpace:
    """`space` with `search.strategy` set to `strategy`, validated again through the loader
    (its text is rewritten, so the run stores the space it really searched)."""
    import yaml

    from nas.searchspace import loads
    from nas.searchspace.locate import parse
    from nas.strategies import list_strategies

    known = list_strategies()
    if not isinstance(strategy, str) or strategy not in known:
        raise NasError(f"unknown strategy {brief(strategy)}{did_you_mean(strategy, known)}; "
                       f"fix: use one of {', '.join(known)}")
    if space.config.search.strategy == strategy:
        return space
    raw, _ = parse(space.text)  # valid already: the loader read it
    raw["search"] = {**(raw.get("search") or {}), "strategy": strategy}
    text = yaml.safe_dump(raw, **DUMP)
    return loads(text, space.path, allow_code=space.allow_code)


def _budget(budget: Any) -> Budget:
    from nas.budget import Budget, parse_budget

    if isinstance(budget, Budget):
        return budget
    if not isinstance(budget, str):
        raise BudgetError(f"budget must be text such as '30m', '2cpuh' or '20trials', not "
                          f"{brief(budget)}")
    return parse_budget(budget)


def _reporter(progress: str | None) -> Any:
    from nas.orchestrator.progress import NullReporter, make_reporter

    if progress is not None and progress not in PROGRESS:
        raise NasError(f"unknown progress {brief(progress)}; fix: use one of "
                       f"{', '.join(PROGRESS)} or None (rich on a terminal, else quiet)")
    return NullReporter() if progress == "off" else make_reporter(progress, sys.stdout)


def _warn_busy() -> None:
    """The CLI's warning, on stderr, when other processes keep this machine's cores busy (read
    over a 0.3 s probe): the search would run slower and time latencies contended."""
    from nas.evaluate.contention import busy_warning

    warning = busy_warning()
    if warning is not None:
        print(warning, file=sys.stderr)


def _storage(storage: Any) -> str | None:
    if storage is not None and not isinstance(storage, str):
        raise NasError(f"storage must be a database URL such as 'sqlite:///nas.db', not "
                       f"{brief(storage)}")
    return storage or os.environ.get("NAS_STORAGE") or None


def _check_options(**given: Any) -> None:
    """NasError for a value of the wrong kind (the CLI's parser checks these there)."""
    for key in ("workers", "threads"):
        value = given.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise NasError(f"{key} must be a whole number of at least 1, not {brief(value)}")
    seed = given.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed <= MAX_SEED):
        raise NasError(f"seed must be a whole number from 0 to {MAX_SEED}, not {brief(seed)}")
    name = given.get("name")
    if name is not None and not isinstance(name, str):
        raise NasError(f"name must be text, not {brief(name)}")
    keep = given.get("keep_weights")
    if keep is not None and keep not in KEEP_WEIGHTS:
        raise NasError(f"unknown keep_weights {brief(keep)}; fix: use one of "
                       f"{', '.join(KEEP_WEIGHTS)}")


def _results(url: str, run_name: str) -> RunResults:
    from nas.store.api import open_store

    return open_store(url).run(run_name)


__all__ = ["search", "resume"]
