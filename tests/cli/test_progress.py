"""`nas search --progress rich|quiet|jsonl` on real 2-trial searches, and Ctrl-C in two stages
sent as real SIGINTs to a real `python -m nas search` process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from nas.cli import app
from nas.store import COMPLETE, FAIL, Store
from nas.store.models import LedgerRow
from tests.conftest import TINY_SPACE
from tests.orchestrator.test_faults import FIXED_SPACE


def run_cli(tmp_path, *extra: str):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    url = f"sqlite:///{tmp_path}/nas.db"
    result = CliRunner().invoke(app, ["search", str(space), "--budget", "2trials", "--storage",
                                      url, "--name", "p", *extra])
    assert result.exit_code == 0, result.output
    return result.stdout, Store(url)  # warnings (a busy machine) go to stderr


def test_jsonl_prints_one_json_object_per_event(tmp_path):
    output, store = run_cli(tmp_path, "--progress", "jsonl")
    events = [json.loads(line) for line in output.splitlines()]  # nothing but JSON lines
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-2:] == ["budget", "stop"]
    assert kinds.count("trial_started") == 2
    ended = [e for e in events if e["event"] in ("trial_complete", "trial_failed")]
    assert sorted(e["number"] for e in ended) == [0, 1]
    for event in events:
        assert event["run"] == "p" and datetime.fromisoformat(event["time"]).tzinfo is not None
    trials = {t.number: t for t in store.trials("p")}
    for event in (e for e in ended if e["event"] == "trial_complete"):
        trial = trials[event["number"]]  # as it completed: before the front was re-measured
        first = {n: trial.metrics.get(f"{n}_initial", v) for n, v in trial.values.items()}
        assert event["values"] == pytest.approx(first)
        assert event["seconds"] > 0 and event["arch"] == trials[event["number"]].short_form
    budget = next(e for e in reversed(events) if e["event"] == "budget")
    assert budget["unit"] == "trials" and budget["spent"] == 2 and budget["left"] == 0
    stop = events[-1]
    assert stop["status"] == "finished" and "budget spent" in stop["message"]
    assert stop["front"] == [t.number for t in store.pareto("p")]


def test_quiet_is_the_default_off_a_terminal(tmp_path):
    output, store = run_cli(tmp_path)
    lines = output.splitlines()
    assert lines[0].startswith("nas search run p · budget 2trials")
    for trial in store.trials("p"):
        [line] = [x for x in lines if x.startswith(f"trial {trial.number:>3}  ")]
        assert trial.short_form in line and ("accuracy=" in line or "FAILED" in line)
    assert any(x.startswith("finished: budget spent") and "front" in x for x in lines)
    assert sum("finished" in x and "budget spent" in x for x in lines) == 1  # said once
    assert "Pareto front of p" in output  # then the front as a table
    assert "\x1b[" not in output  # no terminal control codes


def test_rich_on_request(tmp_path):
    output, store = run_cli(tmp_path, "--progress", "rich")
    assert "nas search run p" in output and "Pareto front of p" in output
    assert sum(f"trial {t.number:>3}" in output for t in store.trials("p")) == 2


def test_an_unknown_progress_mode_is_a_user_error(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    result = CliRunner().invoke(app, ["search", str(tmp_path / "tiny.yaml"), "--budget",
                                      "1trials", "--progress", "fancy"])
    assert result.exit_code == 2 and "unknown --progress 'fancy'" in result.output


class Search:
    """`python -m nas search` in its own session, its JSON events read as they come."""

    def __init__(self, tmp_path):
        (tmp_path / "fixed.yaml").write_text(FIXED_SPACE.replace("RETRIES", "1"))
        self.url = f"sqlite:///{tmp_path}/nas.db"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nas", "search", "fixed.yaml", "--budget", "5trials",
             "--storage", self.url, "--name", "c", "--progress", "jsonl"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, kind: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            if event["event"] == kind:
                return event

    def interrupt(self, signum: int = signal.SIGINT) -> None:
        os.kill(self.proc.pid, signum)

    def finish(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def ledger(self, store: Store) -> list[str]:
        with store.transaction() as s:
            return [r.note for r in s.scalars(select(LedgerRow).order_by(LedgerRow.id))]


def test_first_ctrl_c_lets_the_running_trial_finish(tmp_path):
    search = Search(tmp_path)
    search.wait_for("trial_started")
    time.sleep(2)
    search.interrupt()
    assert search.wait_for("interrupt")["running"] == 1
    assert search.wait_for("trial_complete")["number"] == 0
    stop = search.wait_for("stop")
    assert search.finish() == 1, search.proc.stderr.read()
    assert stop["status"] == "interrupted"
    store = Store(search.url)
    assert store.run("c").status == "interrupted"
    assert [t.state for t in store.trials("c")] == [COMPLETE]  # and no trial started after
    assert search.ledger(store) == ["complete"]


def test_second_ctrl_c_cancels_the_running_trial(tmp_path):
    search = Search(tmp_path)
    search.wait_for("trial_started")
    time.sleep(2)
    search.interrupt()
    search.wait_for("interrupt")
    time.sleep(1)
    search.interrupt()
    failed = search.wait_for("trial_failed")
    assert failed["number"] == 0 and failed["error"].startswith("cancelled")
    assert search.finish() == 1, search.proc.stderr.read()
    store = Store(search.url)
    run = store.run("c")
    assert run.status == "interrupted" and "cancelled" in run.message
    [trial] = store.trials("c")
    assert trial.state == FAIL and trial.error.startswith("cancelled")
    assert search.ledger(store) == ["cancelled"]


def test_sigterm_cancels_the_running_trial_and_marks_the_run(tmp_path):
    search = Search(tmp_path)
    search.wait_for("trial_started")
    time.sleep(2)
    search.interrupt(signal.SIGTERM)  # as `timeout`, `kill` or a job scheduler would
    failed = search.wait_for("trial_failed")
    assert failed["number"] == 0 and "SIGTERM" in failed["error"]
    assert search.finish() == 1, search.proc.stderr.read()
    store = Store(search.url)
    run = store.run("c")
    assert run.status == "interrupted" and "SIGTERM" in run.message
    assert search.ledger(store) == ["cancelled"]
