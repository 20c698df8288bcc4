"""`nas report RUN --out DIR`: a run on one page, as HTML (self-contained: the figure inline as
base64 PNG) and as Markdown (the figure beside it as front.png).

The page holds: what was searched and how it ended, the budget used and left, trials by state,
the Pareto front (with whether its weights were kept), the figure of `nas plot`, the trials that
failed or were infeasible with their reasons, and the space file the run searched.
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nas.budget import parse_budget
from nas.cli.plots import collect, render_png
from nas.cli.untrusted import plain
from nas.errors import NasError
from nas.formatting import format_seconds, format_value
from nas.store import COMPLETE, LedgerEntry, RunRecord, Store, TrialRecord
from nas.store.store import INFEASIBLE

FAILED_STATES = ("FAIL", INFEASIBLE)
FAILED_HEAD = ["trial", "state", "failure", "mixers", "reason"]  # the failed trials' table
STATES = ("COMPLETE", "PRUNED", "DUPLICATE", "FAIL", INFEASIBLE, "PAUSED", "RUNNING")


@dataclass
class Report:
    """What the page says, as plain text and tables (rendered twice: HTML and Markdown)."""

    run: RunRecord
    facts: list[tuple[str, str]]
    front_head: list[str]
    front_rows: list[list[str]]
    failed_rows: list[list[str]]  # trial, state, failure, mixers, reason (first line)
    failed_details: list[tuple[str, str]]  # (trial, full error) where it has more lines
    png: bytes | None
    plot_note: str = ""
    failed_count: int = 0
    notes: list[str] = field(default_factory=list)


def build_report(store: Store, run_ref: str | int) -> Report:
    run = store.run(run_ref)
    trials = store.trials(run.id)
    kept = {a.number for a in store.artifacts(run.id)}
    names = run.objective_names
    goals = ", ".join(f"{n} ({'↑' if d == 'maximize' else '↓'} {d})"
                      for n, d in zip(names, run.directions, strict=True))
    counts = {s: sum(t.state == s for t in trials) for s in STATES}
    facts = [
        ("status", f"{run.status}" + (f" — {run.message}" if run.message else "")),
        ("space", run.space_path),
        ("objectives", goals),
        ("strategy", f"{run.strategy}, seed {run.seed}"),
        ("budget", _budget_text(store, run)),
        ("trials", ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n) or "none"),
        ("device time", f"{run.device_seconds / 3600:.3g} device-hours "
                        f"({format_seconds(run.device_seconds)})"),
        ("wall clock", format_seconds(run.elapsed_seconds)),
        ("started", f"{run.created_at:%Y-%m-%d %H:%M} UTC" + (
            f", finished {run.finished_at:%Y-%m-%d %H:%M} UTC" if run.finished_at else "")),
        ("software", ", ".join(f"{k} {v}" for k, v in sorted(run.versions.items()))
         + f"; host {run.host}"),
    ]
    complete = [t for t in trials if t.state == COMPLETE]
    if any(key.endswith("_accuracy") and key != "accuracy"
           for t in complete for key in (t.metrics or {})):
        # Only for a run scored on proxy tasks: the nas.evaluate package imports torch, which
        # would add seconds to every report.
        from nas.evaluate.ranking import describe_agreement, proxy_agreement, proxy_names

        for row in proxy_agreement(complete, proxy_names(complete)):
            facts.append((f"proxy {row['proxy']}", describe_agreement(row).partition(": ")[2]))
    front = store.pareto(run.id)
    first = names[0]
    descending = run.directions[0] == "maximize"
    front.sort(key=lambda t: t.values[first], reverse=descending)
    head = ["trial", "mixers", "d_model", "layers", "params", *names, "device time", "weights"]
    rows = [[str(t.number), t.short_form, str(t.d_model), str(t.n_layers),
             format_value("params", t.params),
             *(format_value(n, (t.values or {}).get(n)) for n in names),
             format_seconds(t.device_seconds), "kept" if t.number in kept else "—"]
            for t in front]
    failures = Counter(t.failure for t in trials if t.failure)
    if failures:
        facts.append(("failures", ", ".join(f"{n} {name}" for name, n in failures.most_common())))
    failed = [t for t in trials if t.state in FAILED_STATES]
    failed_rows = _failure_rows(failed)
    details = [(str(t.number), t.error or "") for t in failed
               if t.error and "\n" in t.error.strip()]
    png, note = _figure(run, trials, store.ledger_entries(run.id))
    return Report(run, facts, head, rows, failed_rows, details, png, note, len(failed))


def _failure_rows(failed: list[TrialRecord]) -> list[list[str]]:
    """One row per failed trial (trial, state, failure class, mixers, reason); infeasible
    trials with the same reason share one row."""
    rows: list[list[str]] = []
    grouped: dict[tuple[str, str], list[TrialRecord]] = {}
    for t in failed:
        if t.state == INFEASIBLE:
            grouped.setdefault((_first_line(t.error), t.failure or "—"), []).append(t)
        else:
            rows.append([str(t.number), t.state, t.failure or "—", t.short_form,
                         _first_line(t.error)])
    for (reason, failure), group in grouped.items():
        mixers = ", ".join(dict.fromkeys(t.short_form for t in group))
        rows.append([", ".join(str(t.number) for t in group), INFEASIBLE, failure, mixers,
                     reason])
    return rows


def _budget_text(store: Store, run: RunRecord) -> str:
    device_seconds, _, charged = store.ledger(run.id)
    try:
        budget = parse_budget(run.budget)
    except NasError:
        return run.budget
    spent = {"device_seconds": device_seconds, "wall_seconds": run.elapsed_seconds,
             "trials": charged}[budget.unit]
    return (f"{run.budget}: used {budget.describe(spent)} "
            f"({100 * spent / budget.amount:.0f}%), left {budget.describe_left(spent)}")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text and text.strip() else "(no reason recorded)"


def _figure(run: RunRecord, trials: list[TrialRecord],
            ledger: list[LedgerEntry]) -> tuple[bytes | None, str]:
    """The `nas plot` figure, or why there is none."""
    if not any(t.state == COMPLETE for t in trials):
        return None, "no completed trials to plot"
    try:
        return render_png(collect(run, trials, None, None, ledger)), ""
    except NasError as exc:  # matplotlib missing, or nothing to draw
        return None, str(exc)


# ------------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------------


def render_markdown(report: Report, figure: str | None) -> str:
    run = report.run
    name = plain(run.name, 200)  # a name from someone else's database may hold newlines
    out = [f"# nas report: {name}", ""]
    out += [f"- **{k}**: {_md(v)}" for k, v in report.facts]
    out += ["", f"## Pareto front ({_count(len(report.front_rows))})", ""]
    out += _md_table(report.front_head, report.front_rows) or ["(no completed trials)"]
    out += ["", "## Figure", ""]
    out += [f"![front of {name}]({figure})" if figure else f"(no figure: {report.plot_note})"]
    out += ["", f"## Failed and infeasible trials ({report.failed_count})", ""]
    out += _md_table(FAILED_HEAD, report.failed_rows) or ["none"]
    for number, error in report.failed_details:
        fence = _fence(error)
        out += ["", f"<details><summary>trial {number}: full error</summary>", "", fence,
                error.strip(), fence, "", "</details>"]
    fence = _fence(run.space_text)
    out += ["", "## Search space", "",
            f"`{plain(run.space_path, 300)}` (hash `{plain(run.space_hash[:16])}`):", "",
            fence + "yaml", run.space_text.rstrip(), fence, ""]
    return "\n".join(out)


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in `text`, so the text cannot end it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _count(n: int) -> str:
    return f"{n} trial" + ("" if n == 1 else "s")


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_md(c).replace("\n", " ") for c in row) + " |" for row in rows]
    return lines


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222;
       padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.25em 1.2em; }
dt { font-weight: 600; } dd { margin: 0; }
img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; vertical-align: top; }
th { background: #f0f0f0; }
td.text { text-align: left; font-family: ui-monospace, monospace; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; border: 1px solid #ddd; }
details { margin: 0.5em 0; }
"""
_TEXT_COLUMNS = {"mixers", "state", "reason", "weights"}


def render_html(report: Report) -> str:
    run = report.run
    e = html.escape
    facts = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in report.facts)
    if report.png:
        data = base64.b64encode(report.png).decode("ascii")
        figure = f'<img alt="front of {e(run.name)}" src="data:image/png;base64,{data}">'
    else:
        figure = f"<p>(no figure: {e(report.plot_note)})</p>"
    details = "".join(
        f"<details><summary>trial {e(n)}: full error</summary><pre>{e(err.strip())}</pre>"
        "</details>" for n, err in report.failed_details)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nas report: {e(run.name)}</title>
<style>{_STYLE}</style></head><body>
<h1>nas report: {e(run.name)}</h1>
<dl>{facts}</dl>
<h2>Pareto front ({_count(len(report.front_rows))})</h2>
{_html_table(report.front_head, report.front_rows) or "<p>(no completed trials)</p>"}
<h2>Figure</h2>
{figure}
<h2>Failed and infeasible trials ({report.failed_count})</h2>
{_html_table(FAILED_HEAD, report.failed_rows) or "<p>none</p>"}
{details}
<h2>Search space</h2>
<p><code>{e(run.space_path)}</code> (hash <code>{e(run.space_hash[:16])}</code>)</p>
<pre>{e(run.space_text.rstrip())}</pre>
</body></html>
"""


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return ""
    text = [h in _TEXT_COLUMNS for h in head]
    cells = "".join(
        "<tr>" + "".join(f'<td{" class=text" if t else ""}>{html.escape(c)}</td>'
                         for c, t in zip(row, text, strict=True)) + "</tr>\n" for row in rows)
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>\n{cells}</tbody></table>"


def write_report(store: Store, run_ref: str | int, out: str | Path) -> list[Path]:
    """Write report.html, report.md (and front.png when there is a figure) into `out`. Each
    file is written beside its name and renamed onto it, so a link already there is replaced,
    never written through: nothing outside `out` is touched."""
    report = build_report(store, run_ref)
    folder = Path(out)
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        figure = None
        if report.png:
            _replace(folder / "front.png", report.png)
            figure = "front.png"
            written.append(folder / "front.png")
        _replace(folder / "report.html", render_html(report).encode("utf-8"))
        _replace(folder / "report.md", render_markdown(report, figure).encode("utf-8"))
    except OSError as exc:
        raise NasError(f"cannot write the report to {folder}: {exc.strerror or exc}") from None
    return [folder / "report.html", folder / "report.md", *written]


def _replace(path: Path, data: bytes) -> None:
    """Put `data` at `path` by writing a new file in the same folder and renaming it over
    `path` (a link at `path` is replaced by the file, its target left alone)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
