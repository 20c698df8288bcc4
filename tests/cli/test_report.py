"""`nas report`: one self-contained HTML page and its Markdown twin for a real run, with the
budget, the front, the figure, the failures with their reasons and the space."""

from __future__ import annotations

import base64
import re
import sqlite3
import subprocess
import sys

from nas.spec import ArchSpec
from nas.store import Store


def test_report_html_and_markdown(kept_run, tmp_path):
    db = tmp_path / "results.db"
    with sqlite3.connect(kept_run.root / "results.db") as source, sqlite3.connect(db) as copy:
        source.backup(copy)  # WAL mode: the file alone may not hold the last commits
    url = f"sqlite:///{db}"
    store = Store(url)
    run = store.run(kept_run.name)
    front = store.pareto(run.id)
    number = run.trials_total + 10  # a failure with a multi-line error, as a worker reports it
    spec = ArchSpec.from_dict(front[0].spec)
    store.start_trial(run.id, number, spec, worker="w")
    store.fail_trial(run.id, number, error="TrialDiverged: loss is nan at step 12\nTraceback <x>",
                     device_seconds=1.0, wall_seconds=1.0)
    store.close()

    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "nas", "report", kept_run.name, "--out",
                           str(out), "--storage", url], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    page = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()

    # self-contained: the only image is inline, nothing is fetched
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")
    assert base64.b64decode(sources[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in page and "<script" not in page
    assert (out / "front.png").read_bytes()[:4] == b"\x89PNG" and "](front.png)" in markdown

    for text in (page, markdown):
        assert "used 4 of 3 trials (133%), left 0 trials" in text  # 3 + the failure
        assert f"Pareto front ({len(front)} trial" in text
        for trial in front:
            assert f"{trial.short_form}" in text
        assert "TrialDiverged: loss is nan at step 12" in text
        assert "Traceback &lt;x&gt;" in text or "Traceback <x>" in text
        assert "name: kept" in text and "count(attention) &lt;= 1" in text or \
            "count(attention) <= 1" in text
    rows = re.findall(r"<tr><td>(\d+)</td>", page)  # front and FAIL rows: one trial each
    assert {int(r) for r in rows} >= {t.number for t in front} | {number}
    assert page.count(">kept<") == len(front)  # the front kept its weights


def test_report_of_an_unknown_run_is_one_line(kept_run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nas", "report", "nope", "--out",
                           str(tmp_path / "r"), "--storage", kept_run.url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr
    assert not (tmp_path / "r").exists()
