"""`nas submit`: a whole search as a Ray Job, and the verbs that follow one.

    nas submit SPACE --address http://HEAD:8265 --budget 20gpuh --storage postgresql://...
    nas submit --status JOB | --logs JOB [--follow] | --stop JOB   (same --address)

The job's entrypoint is ``python -m nas search SPACE --budget ... --storage ...`` run in the
space's folder (the job's working_dir, uploaded by Ray). The search driver runs on the head node
and is the only writer of the database, so `--storage` must be a database the head can reach
after the job ends: PostgreSQL, or SQLite at an absolute path on the head. Trials go to the
cluster through `nas search`'s Ray options, which read NAS_RAY_ADDRESS (set to "auto" here),
NAS_RAY_CPUS_PER_TRIAL and NAS_RAY_GPUS_PER_TRIAL from the job's runtime environment. A space
that runs the user's code (a python task, a mixer by import path) is submitted only with
`--allow-code`, which is passed on to the job's `nas search` (its module must be inside the
uploaded working_dir); nothing of it is imported here. The space,
budget and storage are checked here before anything is uploaded; errors from the job server (an
unknown job, a server that does not answer) are one-line NasErrors.
Ray itself is imported only when the command runs.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from nas.errors import NasError

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# The job's first command: a head node whose `python` lacks nas (a cluster started outside the
# environment nas is installed in) fails the job with this hint, not only an ImportError.
IMPORT_CHECK = ("python -c 'import nas.cli' || { echo \"nas submit: the head node's python "
                "($(command -v python || echo 'not found')) cannot import nas: start the Ray "
                "cluster (ray start) from the activated environment where nas is installed\" >&2; "
                "exit 1; }")
EXCLUDES = [".git", ".venv", "venv", "__pycache__", "*.db", "*.db-wal", "*.db-shm", "ray_results"]


def submit(
    space: Path = typer.Argument(None, help="The search-space YAML file to search."),
    address: str = typer.Option(None, "--address", envvar="RAY_API_SERVER_ADDRESS",
                                help="The cluster's job server, e.g. http://HEAD:8265."),
    budget: str = typer.Option(None, "--budget", "-b", help="As for `nas search`."),
    storage: str = typer.Option(None, "--storage", help="Database URL the head node can reach "
                                "(postgresql://..., or sqlite:////absolute/path.db)."),
    name: str = typer.Option(None, "--name", help="Run name (default: SPACE_NAME-N)."),
    seed: int = typer.Option(None, "--seed", help="Overrides the space's search.seed."),
    cpus: float = typer.Option(1, "--num-cpus-per-trial", help="CPUs each trial asks for."),
    gpus: float = typer.Option(0, "--num-gpus-per-trial", help="GPUs each trial asks for."),
    working_dir: Path = typer.Option(None, "--working-dir", help="Folder uploaded as the job's "
                                     "working_dir (default: the space's folder)."),
    pip: list[str] = typer.Option(None, "--pip", help="Extra pip requirement for the job's "
                                  "environment (repeatable)."),
    ship_nas: bool = typer.Option(False, "--ship-nas", help="Upload this nas package with the "
                                  "job, for clusters where it is not installed."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to end; exit 1 unless it "
                              "succeeded."),
    status: str = typer.Option(None, "--status", metavar="JOB", help="Print JOB's status."),
    logs: str = typer.Option(None, "--logs", metavar="JOB", help="Print JOB's logs."),
    follow: bool = typer.Option(False, "--follow", help="With --logs: stream until JOB ends."),
    stop: str = typer.Option(None, "--stop", metavar="JOB", help="Stop JOB."),
    allow_code: bool = typer.Option(False, "--allow-code", envvar="NAS_ALLOW_CODE",
                                    help="Let the submitted search import and run the user "
                                    "code the space names (a python task's entrypoint, a mixer "
                                    "given by import path): `nas search --allow-code` on the "
                                    "cluster. Also NAS_ALLOW_CODE=1."),
) -> None:
    """Submit a search to a Ray cluster as a Ray Job (prints the job id), or follow one."""
    verbs = [v for v in (status, logs, stop) if v]
    if len(verbs) > 1 or (verbs and space is not None):
        raise NasError("give SPACE to submit, or one of --status/--logs/--stop JOB")
    if verbs:
        job_verb(job_client(address), address, status, logs, follow, stop)
        return
    if space is None:
        raise NasError("nothing to do: give SPACE to submit, or --status/--logs/--stop JOB")
    folder = (working_dir or space.parent).resolve()
    # the space, budget and storage are checked here: a job that cannot start is not submitted
    entrypoint = search_entrypoint(space, folder, budget, storage, name, seed, allow_code)
    env = runtime_env(folder, cpus, gpus, pip or [], ship_nas)
    client = job_client(address)
    with job_errors(address):
        job = client.submit_job(entrypoint=entrypoint, runtime_env=env,
                                metadata={"tool": "nas", "space": space.name})
    typer.echo(job)
    print(f"follow it: nas submit --logs {job} --follow --address {client.get_address()}",
          file=sys.stderr)
    if wait:
        with job_errors(address, job):
            final = wait_for(client, job)
        print(f"{job}: {final}", file=sys.stderr)
        if final != "SUCCEEDED":
            raise typer.Exit(1)


def job_verb(client: Any, address: str, status: str | None, logs: str | None, follow: bool,
             stop: str | None) -> None:
    """--status, --logs or --stop JOB; an unknown JOB is a one-line error."""
    job = status or logs or stop
    with job_errors(address, job):
        if status:
            typer.echo(client.get_job_status(job).value)
        elif logs:
            show_logs(client, job, follow)
        else:
            stopped = client.stop_job(job)
            typer.echo(f"{job}: {'stop requested' if stopped else 'already ended'}")


def job_client(address: str | None) -> Any:
    """A JobSubmissionClient for `address` (http://HEAD:8265), with a clear error when the job
    server cannot be reached or refuses the client."""
    if not address:
        raise NasError("no job server: pass --address http://HEAD:8265 (the Ray dashboard "
                       "port) or set RAY_API_SERVER_ADDRESS")
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise NasError("nas submit needs Ray Jobs: pip install 'ray[default]'") from None
    if "://" not in address:  # a GCS address (HOST:6379): Ray would retry it for minutes
        from nas.orchestrator.ray_executor import unreachable

        reason = unreachable(address)
        if reason:
            raise NasError(f"cannot reach the Ray job server at {address} ({reason}); pass "
                           "--address http://HEAD:8265 (the Ray dashboard port)")
    with job_errors(address):
        return JobSubmissionClient(address)


@contextmanager
def job_errors(address: str, job: str | None = None) -> Iterator[None]:
    """Ray's errors from the job server at `address` as one-line NasErrors: no such `job`, a
    server that cannot be reached, refuses the client or fails the request."""
    from ray.exceptions import RayError

    try:
        yield
    except BrokenPipeError:  # our stdout closed (`--logs JOB | head`): not the server's fault
        raise
    except (OSError, RuntimeError, ValueError, RayError) as exc:
        text = " ".join(str(exc).split())[:500]
        if job and ("status code 404" in text or "does not exist" in text):
            raise NasError(f"no job {job} at {address}") from None
        if "Authentication" in type(exc).__name__ or "token" in text.lower():
            text += ("; this cluster wants a token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                     "(or ~/.ray/auth_token)")
        verb = "reach" if isinstance(exc, OSError) else "use"
        raise NasError(f"cannot {verb} the Ray job server at {address}: {text}") from None


def search_entrypoint(space: Path, folder: Path, budget: str | None, storage: str | None,
                      name: str | None, seed: int | None, allow_code: bool = False) -> str:
    """The shell command the job runs in `folder`: `python -m nas search ...`, after a check
    that the head node's `python` can import nas. A space that needs user code is refused
    (its one-line SpaceError) unless `allow_code`, which adds `--allow-code` to the command;
    its code is read here, never imported (the job's environment may differ from this one)."""
    from nas.budget import parse_budget
    from nas.searchspace import load
    from nas.searchspace.loader import require_trusted

    compiled = load(space)  # a broken space fails here, not on the cluster
    if not allow_code:
        require_trusted(compiled)  # as `nas search` would on the cluster, before submitting
    try:
        relative = space.resolve().relative_to(folder)
    except ValueError:
        raise NasError(f"{space} is not inside the working dir {folder}; pass --working-dir "
                       "a folder that contains it") from None
    budget = budget or compiled.config.budget
    if not budget:
        raise NasError(f"no budget: pass --budget (e.g. 2gpuh, 30m, 50trials) or set `budget:` "
                       f"in {space}")
    parse_budget(budget)  # a malformed budget fails here, not on the cluster
    url = storage or os.environ.get("NAS_STORAGE") or compiled.config.storage
    check_storage(url)
    words = ["python", "-m", "nas", "search", relative.as_posix(), "--budget", budget,
             "--storage", url]
    if name:
        words += ["--name", name]
    if seed is not None:
        words += ["--seed", str(seed)]
    if allow_code:
        words.append("--allow-code")
    return f"{IMPORT_CHECK}; {shlex.join(words)}"


def check_storage(url: str | None) -> None:
    """The job writes where it runs: refuse databases that would vanish with its folder."""
    from sqlalchemy.engine import make_url

    if not url:
        raise NasError("no --storage: a submitted search needs a database the head node keeps, "
                       "e.g. postgresql://USER@HOST/nas or sqlite:////abs/path/nas.db")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not os.path.isabs(path):
            raise NasError(f"--storage {url}: a SQLite file must be an absolute path on the head "
                           "node (sqlite:////abs/path/nas.db): a relative one would be written "
                           "inside the job's temporary working dir and lost")


def runtime_env(folder: Path, cpus: float, gpus: float, pip: list[str],
                ship_nas: bool) -> dict[str, Any]:
    env: dict[str, Any] = {
        "working_dir": str(folder), "excludes": EXCLUDES,
        "env_vars": {"NAS_RAY_ADDRESS": "auto", "NAS_RAY_CPUS_PER_TRIAL": f"{cpus:g}",
                     "NAS_RAY_GPUS_PER_TRIAL": f"{gpus:g}"},
    }
    if pip:
        env["pip"] = list(pip)
    if ship_nas:
        import nas

        env["py_modules"] = [str(Path(nas.__file__).parent)]
    return env


def wait_for(client: Any, job: str, poll: float = 1.0, timeout: float | None = None) -> str:
    """Block until `job` ends; its final status (SUCCEEDED, FAILED or STOPPED)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = client.get_job_status(job).value
        if status in TERMINAL or (deadline is not None and time.monotonic() > deadline):
            return status
        time.sleep(poll)


def show_logs(client: Any, job: str, follow: bool) -> None:
    if not follow:
        typer.echo(client.get_job_logs(job), nl=False)
        return
    client.get_job_info(job)  # an unknown job: Ray's 404 here, not a failed websocket

    async def stream() -> None:
        async for lines in client.tail_job_logs(job):
            typer.echo(lines, nl=False)

    asyncio.run(stream())
