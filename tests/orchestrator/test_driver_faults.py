"""The driver itself failing, for real: two searches racing to create a new database, a full
disk, a closed stdout, SIGTERM, and a SIGKILLed driver. However it ends, its run is never left
`running`, the trials it could not finish are trained again on resume, and every trial's
device-seconds equal the sum of its ledger rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from sqlalchemy.exc import OperationalError

from nas.budget import parse_budget
from nas.errors import StoreError
from nas.orchestrator.progress import NullReporter
from nas.orchestrator.requeue import RETRAIN_OF
from nas.orchestrator.search import SearchOptions, resume_search, run_search
from nas.searchspace import loads
from nas.store import COMPLETE, FAIL, RUNNING, Store
from tests.orchestrator.test_faults import FIXED_SPACE, ledger_notes

ROOT = Path(__file__).resolve().parents[2]


def nas_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas", *args]


def environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def assert_ledger_adds_up(store: Store, run_name: str) -> None:
    """Each trial's device-seconds are the sum of its ledger rows (retries, segments, losses)."""
    charged: dict[int, float] = {}
    for number, _, seconds in ledger_notes(store, run_name):
        charged[number] = charged.get(number, 0.0) + seconds
    for trial in store.trials(run_name):
        assert trial.device_seconds == pytest.approx(charged.get(trial.number, 0.0)), trial


def wait_for(condition, seconds: float = 120.0, what: str = "the search") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except StoreError:  # the database or the run does not exist yet
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} never got there")


def group_alive(pgid: int) -> list[str]:
    """Live (not zombie) processes of a process group."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if int(line.split()[1]) == pgid and not line.split()[2].startswith("Z")]


def test_two_searches_starting_at_once_on_a_new_database_both_finish(tmp_path, tiny_space_file):
    url = f"sqlite:///{tmp_path}/fresh.db"
    command = nas_command("search", str(tiny_space_file), "--budget", "1trials", "--storage",
                          url, "--progress", "quiet")
    drivers = [subprocess.Popen(command, cwd=tmp_path, env=environment(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    outputs = [driver.communicate(timeout=240) for driver in drivers]
    for driver, (_, err) in zip(drivers, outputs, strict=True):
        assert driver.returncode == 0, err
    runs = Store(url).runs()
    assert sorted(r.status for r in runs) == ["finished", "finished"]
    for run in runs:
        study = optuna.load_study(study_name=run.name, storage=url)
        assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]


def test_a_full_disk_fails_the_run_and_resume_trains_the_trial_again(tmp_path, monkeypatch):
    space = FIXED_SPACE.replace("RETRIES", "0").replace("steps: 1500", "steps: 30")
    url = f"sqlite:///{tmp_path}/nas.db"
    full = OperationalError("UPDATE nas_trials ...", {}, Exception("database or disk is full"))

    def disk_full(*args, **kwargs):
        raise full

    monkeypatch.setattr(Store, "complete_trial", disk_full)
    options = SearchOptions(budget=parse_budget("1trials"), storage=url, threads=1, name="full")
    with pytest.raises(StoreError) as raised:
        run_search(loads(space, "space.yaml"), options, NullReporter())
    assert "database or disk is full" in str(raised.value)
    assert "\n" not in str(raised.value)  # the CLI prints it as one line
    store = Store(url)
    run = store.run("full")
    assert run.status == "failed" and "disk is full" in run.message
    [trial] = store.trials("full")
    assert trial.state == FAIL and trial.error.startswith("abandoned:")  # never left RUNNING
    assert_ledger_adds_up(store, "full")

    monkeypatch.undo()  # the disk has room again
    outcome = resume_search("full", SearchOptions(budget=parse_budget("2trials"), storage=url,
                                                  threads=1), NullReporter())
    assert outcome.status == "finished", outcome.message
    first, again = store.trials("full")
    assert again.state == COMPLETE and again.config_hash == first.config_hash
    assert_ledger_adds_up(store, "full")
    study = optuna.load_study(study_name="full", storage=url)
    assert study.trials[1].user_attrs[RETRAIN_OF] == 0


def test_a_full_disk_that_stays_full_leaves_the_trial_for_resume(tmp_path, monkeypatch):
    """Even the final writes fail: the run stays marked running by a dead driver; resume
    charges the lost trial and trains its configuration again."""
    space = FIXED_SPACE.replace("RETRIES", "0").replace("steps: 1500", "steps: 30")
    url = f"sqlite:///{tmp_path}/nas.db"
    full = OperationalError("UPDATE ...", {}, Exception("database or disk is full"))

    def disk_full(*args, **kwargs):
        raise full

    for method in ("complete_trial", "fail_trial", "finish_run", "prune_artifacts"):
        monkeypatch.setattr(Store, method, disk_full)
    options = SearchOptions(budget=parse_budget("1trials"), storage=url, threads=1, name="full")
    with pytest.raises(StoreError, match="disk is full"):
        run_search(loads(space, "space.yaml"), options, NullReporter())
    monkeypatch.undo()
    store = Store(url)
    assert store.trials("full")[0].state == RUNNING
    with store.transaction() as s:  # as if another process had run it: its pid is gone
        from nas.store.models import RunRow
        s.get(RunRow, store.run("full").id).driver_pid = 2 ** 22 + 1
    outcome = resume_search("full", SearchOptions(budget=parse_budget("2trials"), storage=url,
                                                  threads=1), NullReporter())
    assert outcome.status == "finished", outcome.message
    lost, again = store.trials("full")
    assert lost.state == FAIL and lost.error.startswith("lost:")
    assert again.state == COMPLETE and again.config_hash == lost.config_hash
    assert_ledger_adds_up(store, "full")


def test_a_lost_trial_keeps_earlier_charges(tmp_path):
    """A trial retried once, then lost with its driver: the loss is added to its retry's charge
    (not written over it), counted from the retry on."""
    store = Store(f"sqlite:///{tmp_path}/nas.db")
    run = store.create_run(
        name="r", base_name="r", space_path="s.yaml", space_text="name: r", space_hash="h",
        objectives=[{"name": "accuracy", "direction": "maximize"}], strategy="random", seed=0,
        budget="3trials", budget_unit="trials", budget_amount=3, versions={}, host="gone",
        driver_pid=None)
    spec = loads(FIXED_SPACE.replace("RETRIES", "1"), "s.yaml").sample(
        optuna.create_study().ask())
    store.start_trial(run.id, 0, spec, worker="local")
    store.retry_trial(run.id, 0, device_seconds=0.24, wall_seconds=0.24)
    time.sleep(0.3)
    store.beat(run.id)  # the driver's last sign of life, 0.3 s into the second attempt
    assert store.reopen_run(run.id, driver_pid=os.getpid(), host="here") == [0]
    [trial] = store.trials("r")
    notes = ledger_notes(store, "r")
    assert [note for _, note, _ in notes] == ["lost", "lost"]
    assert 0.25 <= notes[1][2] < 2.0  # the second attempt only, not the first again
    assert trial.device_seconds == pytest.approx(0.24 + notes[1][2])
    assert store.unfinished_trials(run.id) == [0]


@pytest.mark.parametrize("progress", ["quiet", "jsonl", "rich"])
def test_a_closed_stdout_ends_the_search_interrupted(tmp_path, tiny_space_file, progress):
    url = f"sqlite:///{tmp_path}/nas.db"
    driver = subprocess.Popen(
        nas_command("search", str(tiny_space_file), "--budget", "20trials", "--storage", url,
                    "--progress", progress, "--name", "piped"),
        cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    driver.stdout.readline()  # the first line, then the reader goes away (`| head -1`)
    driver.stdout.close()
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 1, err  # not killed by SIGPIPE, no traceback
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    run = Store(url).run("piped")
    assert run.status == "interrupted" and "stdout closed" in run.message


@pytest.mark.parametrize("when", ["starting", "training"])
def test_sigterm_ends_the_search_within_seconds(tmp_path, when):
    space = tmp_path / "space.yaml"
    space.write_text(FIXED_SPACE.replace("RETRIES", "1").replace("steps: 1500", "steps: 20000"))
    url = f"sqlite:///{tmp_path}/nas.db"
    driver = subprocess.Popen(
        nas_command("search", str(space), "--budget", "3trials", "--storage", url, "--progress",
                    "quiet", "--name", "termed"),
        cwd=tmp_path, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        if when == "starting":  # as soon as the run exists: workers, Optuna, no trial yet
            wait_for(lambda: Store(url, create=False).run("termed"))
        else:
            wait_for(lambda: [t.state for t in Store(url, create=False).trials("termed")]
                     == [RUNNING])
            time.sleep(1.0)
        sent = time.monotonic()
        driver.send_signal(signal.SIGTERM)
        _, err = driver.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert took < 10, f"took {took:.1f} s"
    assert b"Traceback" not in err, err
    time.sleep(0.5)
    assert not group_alive(driver.pid)  # its workers are gone too
    store = Store(url)
    run = store.run("termed")
    assert run.status == "interrupted" and "SIGTERM" in run.message
    assert all(t.state != RUNNING for t in store.trials("termed"))
    if when == "training":
        [trial] = store.trials("termed")
        assert trial.state == FAIL and trial.error.startswith("cancelled:")
        assert store.unfinished_trials(run.id) == [0]
    assert_ledger_adds_up(store, "termed")


def spawned_workers(pid: int) -> list[int]:
    """The multiprocessing-spawned children of `pid` (workers, while they still import)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True,
                         text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()
            if int(line.split()[1]) == pid and "spawn_main" in line]


def _default_sigint() -> None:
    """A shell runs a background job with SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_the_worker_is_still_importing(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group; a worker still starting up (spawn:
    importing torch) must not die of it with multiprocessing's traceback: the driver alone
    decides, and the first Ctrl-C lets the search stop cleanly with no trial lost."""
    space = tmp_path / "space.yaml"
    space.write_text(FIXED_SPACE.replace("RETRIES", "1"))
    url = f"sqlite:///{tmp_path}/nas.db"
    driver = subprocess.Popen(
        nas_command("search", str(space), "--budget", "2trials", "--storage", url,
                    "--progress", "quiet", "--name", "early"),
        cwd=tmp_path, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,  # a group of its own, as a terminal's foreground job has
        preexec_fn=_default_sigint)  # as in a terminal, even if pytest runs in the background
    try:
        deadline = time.monotonic() + 120
        while not spawned_workers(driver.pid) and driver.poll() is None:
            assert time.monotonic() < deadline, "no worker ever started"
            time.sleep(0.05)
        time.sleep(0.2)  # the worker is importing now
        os.killpg(driver.pid, signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err
    store = Store(url)
    run = store.run("early")
    assert run.status in ("interrupted", "finished"), run
    for trial in store.trials("early"):
        assert trial.state != RUNNING and "WorkerLost" not in (trial.error or ""), trial
        assert "SIGINT" not in (trial.error or ""), trial
    assert_ledger_adds_up(store, "early")


def _report_sigint_disposition(queue) -> None:
    """Spawned child: whether SIGINT was ignored when its interpreter started (nothing in
    multiprocessing's bootstrap touches it, so this is the disposition it inherited)."""
    queue.put(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


@pytest.mark.parametrize("blocked", [True, False])
def test_a_worker_starts_with_sigint_ignored_from_its_first_instruction(blocked):
    """Deterministic half of the test above: a process spawned inside `_sigint_blocked` starts
    with SIGINT ignored (Python installs no KeyboardInterrupt handler), so a Ctrl-C during its
    imports cannot kill it; one spawned outside does not (the control: the check can fail)."""
    import contextlib
    import multiprocessing

    from nas.orchestrator.executor import _sigint_blocked

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    # As in a terminal: Python's own handler (a test run in the background, e.g. under nohup,
    # starts with SIGINT ignored, which every child would inherit anyway).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        guard = _sigint_blocked() if blocked else contextlib.nullcontext()
        with guard:
            child = context.Process(target=_report_sigint_disposition, args=(queue,))
            child.start()
        try:
            assert queue.get(timeout=60) is blocked
        finally:
            child.join(timeout=30)
        # the driver's handler is back
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
