"""Several processes opening one new database at the same moment (a search starting while
`nas runs` looks at it): each gets a working store, the schema is migrated once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

OPEN = textwrap.dedent("""\
    import os, sys, time
    from nas.store import Store
    go = sys.argv[2]
    while not os.path.exists(go):
        time.sleep(0.005)
    store = Store(sys.argv[1])
    print(len(store.runs()))
""")


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path):
    url, go = f"sqlite:///{tmp_path}/nas.db", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, url, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    time.sleep(3)  # every process has imported nas and waits at the line
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-800:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["0"] * 4
