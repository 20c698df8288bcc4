"""Space files built to hurt are refused with one line, and nothing else happens.

Every file of tests/hostile/spaces/ (written by generate.py) says on its first line what its
error must name, `# expect: KEY | FRAGMENT` (KEY `-`: the file as a whole). For each:

- in-process, `nas.searchspace.load` raises SpaceError within a time limit, one line that
  starts with the file's name, names the key and holds the fragment;
- from a fresh empty folder, nothing is created (code-execution attempts try to create PWNED);
- a sample runs through the real CLI, `nas validate FILE`, in a subprocess limited in time and
  memory: exit code 2, exactly one line of output, no traceback, no file left behind;
- a few code-execution and bomb files run through `nas search --budget 1trials`, which must
  refuse them before a run (or a database) exists.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.errors import SpaceError
from nas.searchspace import load

CORPUS = Path(__file__).parent / "spaces"
FILES = sorted(CORPUS.glob("*.yaml"))
SECONDS = 10  # in-process, per file
CLI_SECONDS = 20
MEMORY = 3 << 30  # address space of a `nas` subprocess
CLI_SAMPLE = ["code_task_os_system", "code_task_sys_exit", "code_task_os_abort",
              "code_mixer_subprocess_Popen", "bomb_billion_laughs", "deep_lists_5000",
              "bytes_nul", "tag_python_apply"]
SEARCH_SAMPLE = ["code_task_os_system", "code_task_builtins_eval", "code_mixer_os_system",
                 "bomb_merge_keys", "num_steps_1e12"]


def expectation(path: Path) -> tuple[str, str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8").lstrip("\ufeff")
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    key, _, fragment = first[len("# expect: "):].partition(" | ")
    return key, fragment


def check_message(message: str, path: Path) -> None:
    """One line naming the file, the expected key and fragment, and a fix."""
    key, fragment = expectation(path)
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(f"{path.name}:"), message
    if key != "-":  # the key itself, or a key under it (a bomb's expansion path)
        assert re.search(f": {re.escape(key)}[.:]", message), f"{key!r} not named: {message}"
    assert fragment in message, f"{fragment!r} not in: {message}"
    assert " — fix: " in message, f"no fix: {message}"
    assert len(message) < 2000, f"message of {len(message)} characters"


class _TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise _TimeLimit


def test_corpus_is_large_and_varied():
    assert len(FILES) >= 80
    kinds = {p.name.split("_")[0] for p in FILES}
    assert {"code", "bomb", "num", "constraint", "name", "tag", "bytes", "deep"} <= kinds


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_load_refuses_in_one_line_and_touches_nothing(path, tmp_path, monkeypatch):
    shutil.copy(path, tmp_path / path.name)
    monkeypatch.chdir(tmp_path)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    started = time.monotonic()
    try:
        with pytest.raises(SpaceError) as info:
            load(path.name)
    except _TimeLimit:
        pytest.fail(f"{path.name}: load ran past {SECONDS} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < SECONDS
    check_message(str(info.value), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_file_over_one_megabyte_is_refused(tmp_path, monkeypatch):
    big = tmp_path / "big.yaml"
    big.write_text((CORPUS / "code_task_os_system.yaml").read_text().split("\n", 1)[1]
                   + "description: " + "x" * (1 << 20) + "\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpaceError, match=r"space file is 1\.\d MB; the limit is 1 MB"):
        load("big.yaml")


def _limits() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def nas(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NAS_ALLOW_CODE"}
    env.update(OMP_NUM_THREADS="1", COLUMNS="400")
    return subprocess.run([sys.executable, "-m", "nas", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=CLI_SECONDS,
                          preexec_fn=_limits)


@pytest.mark.parametrize("name", CLI_SAMPLE)
def test_cli_validate_exits_2_with_one_line(name, tmp_path):
    path = CORPUS / f"{name}.yaml"
    shutil.copy(path, tmp_path / path.name)
    result = nas(["validate", path.name], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert output.count("\n") == 1 and output.startswith("error: "), output
    check_message(output.removeprefix("error: ").strip(), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("name", SEARCH_SAMPLE)
def test_cli_search_refuses_before_anything_runs(name, tmp_path):
    path = CORPUS / f"{name}.yaml"
    shutil.copy(path, tmp_path / path.name)
    result = nas(["search", path.name, "--budget", "1trials", "--storage",
                  "sqlite:///nas.db"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert output.count("\n") == 1 and "Traceback" not in output, output
    check_message(output.removeprefix("error: ").strip(), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no database, no run
