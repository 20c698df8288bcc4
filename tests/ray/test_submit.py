"""`nas submit`: a whole search as a Ray Job on the test cluster's job server."""

from __future__ import annotations

import time

import pytest
import typer
from typer.testing import CliRunner

from nas.cli import app as nas_app
from nas.cli.submit import check_storage, job_client, submit, wait_for
from nas.errors import NasError
from nas.store import COMPLETE, Store

pytestmark = pytest.mark.ray

app = typer.Typer()
app.command()(submit)
app.command("noop")(lambda: None)  # two commands: typer keeps `submit` as a subcommand


def nas_submit(*args: str):
    result = CliRunner().invoke(app, ["submit", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.mark.parametrize("url", ["sqlite:///nas.db", "sqlite://", None])
def test_a_database_the_job_would_lose_is_refused(url):
    with pytest.raises(NasError, match="sqlite|storage"):
        check_storage(url)
    check_storage("sqlite:////abs/nas.db")
    check_storage("postgresql://nas@head/nas")


def test_submit_runs_a_search_that_writes_the_database(ray_cluster, tiny_space_file, tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"  # absolute: four slashes
    result = nas_submit(str(tiny_space_file), "--address", ray_cluster.dashboard,
                        "--budget", "1trials", "--storage", url, "--name", "from-a-job")
    assert result.exit_code == 0, result.output
    job = result.stdout.strip().splitlines()[-1]
    client = job_client(ray_cluster.dashboard)
    final = wait_for(client, job, timeout=240)
    assert final == "SUCCEEDED", client.get_job_logs(job)[-3000:]
    assert nas_submit("--status", job, "--address", ray_cluster.dashboard).stdout.strip() \
        == "SUCCEEDED"
    logs = nas_submit("--logs", job, "--address", ray_cluster.dashboard).stdout
    assert "from-a-job" in logs
    store = Store(url)
    run = store.run("from-a-job")
    assert run.status == "finished"
    assert [t.state for t in store.trials(run.name)] == [COMPLETE]


def test_stop_ends_a_running_job(ray_cluster, tiny_space_file, tmp_path):
    url = f"sqlite:///{tmp_path / 'stopped.db'}"
    job = nas_submit(str(tiny_space_file), "--address", ray_cluster.dashboard, "--budget",
                     "30m", "--storage", url).stdout.strip().splitlines()[-1]
    client = job_client(ray_cluster.dashboard)
    deadline = time.monotonic() + 120
    while client.get_job_status(job).value != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    stopped = nas_submit("--stop", job, "--address", ray_cluster.dashboard)
    assert "stop requested" in stopped.stdout
    assert wait_for(client, job, timeout=60) == "STOPPED"


def test_verbs_need_a_job_server():
    with pytest.raises(NasError, match="--address"):
        job_client(None)


@pytest.mark.parametrize("verb", [["--status"], ["--stop"], ["--logs"], ["--follow", "--logs"]])
def test_an_unknown_job_is_a_one_line_error(ray_cluster, verb):
    result = CliRunner().invoke(nas_app, ["submit", *verb, "raysubmit_nosuch", "--address",
                                          ray_cluster.dashboard])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: no job raysubmit_nosuch at {ray_cluster.dashboard}\n"
