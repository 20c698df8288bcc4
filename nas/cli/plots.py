"""`nas plot`: a run's front, its hypervolume over device-hours and the mixers along the front,
as a PNG (matplotlib, imported only when drawing) or a self-contained HTML page.

`hypervolume_2d` needs nothing beyond the standard library, so it can be used and tested without
matplotlib.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.orchestrator.progress import format_value
from nas.spec import MIXER_LETTERS
from nas.store import COMPLETE, LedgerEntry, RunRecord, TrialRecord

SUFFIXES = (".png", ".html")
INSTALL_HINT = "matplotlib is not installed: pip install 'nas[plot]'"


# ------------------------------------------------------------------------------------------------
# numbers
# ------------------------------------------------------------------------------------------------


def hypervolume_2d(points: Sequence[Sequence[float]], directions: Sequence[str],
                   reference: Sequence[float]) -> float:
    """The exact area dominated by `points` and bounded by `reference`, for two objectives.

    Each direction is "minimize" or "maximize"; `reference` is in the objectives' own units
    (usually the worst value of each). A point that is not strictly better than the reference in
    both objectives adds nothing; dominated and repeated points add nothing either. Computed by a
    sweep: minimize both (negating maximized ones), sort by the first objective, and add the
    strip each point gains below the best second value so far.
    """
    if len(directions) != 2 or len(reference) != 2:
        raise ValueError("hypervolume_2d takes exactly two objectives")
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    ref_x, ref_y = (s * r for s, r in zip(signs, reference, strict=True))
    inside = sorted(
        (signs[0] * p[0], signs[1] * p[1]) for p in points
        if signs[0] * p[0] < ref_x and signs[1] * p[1] < ref_y
    )
    area, best_y = 0.0, ref_y
    for x, y in inside:
        if y < best_y:
            area += (ref_x - x) * (best_y - y)
            best_y = y
    return area


def mixer_family(short_form: str) -> str:
    """The set of token-mixer letters of a trial: "C-A-C-A" → "A+C"."""
    return "+".join(sorted({p for p in short_form.split("-") if p})) or "?"


def mixer_shares(trials: Sequence[TrialRecord]) -> dict[str, float]:
    """Share of each mixer letter among all layers of `trials`, largest first."""
    counts: dict[str, int] = {}
    for t in trials:
        for letter in t.short_form.split("-"):
            if letter:
                counts[letter] = counts.get(letter, 0) + 1
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


@dataclass(frozen=True)
class PlotData:
    run: RunRecord
    x: str | None  # None for a single-objective run (x = trial number)
    y: str
    complete: list[TrialRecord]  # completed trials with values for x and y, in trial order
    front: list[TrialRecord]
    progress: list[tuple[float, float]]  # (device-hours, hypervolume or best so far)


def choose_objectives(run: RunRecord, x: str | None, y: str | None) -> tuple[str | None, str]:
    names = run.objective_names
    for flag, value in (("--x", x), ("--y", y)):
        if value is not None and value not in names:
            raise NasError(f"unknown {flag} {value!r}; run {run.name!r} has objectives "
                           f"{', '.join(names)}")
    if len(names) == 1:
        if x is not None:
            raise NasError(f"run {run.name!r} has one objective ({names[0]}); --x does not "
                           "apply (it is plotted over trial number)")
        return None, names[0]
    y = y or (names[0] if x != names[0] else names[1])
    x = x or next(n for n in (names[1], names[0]) if n != y)
    if x == y:
        raise NasError(f"--x and --y are both {x!r}; choose two different objectives")
    return x, y


def collect(run: RunRecord, trials: Sequence[TrialRecord], x: str | None, y: str,
            ledger: Sequence[LedgerEntry] | None = None) -> PlotData:
    """What the figure shows, from the run's trials (any states). With the run's `ledger`, the
    progress curve's x is the device time spent when each trial completed (every charge before
    it counted, pruned and failed trials' segments included); without it, each trial's total
    is charged when it finished. Text from the database is drawn as plain characters (see
    `_labels`)."""
    run, trials = _labels(run, trials)
    wanted = [n for n in (x, y) if n is not None]
    complete = [t for t in trials if t.state == COMPLETE and t.values
                and all(t.values.get(n) is not None for n in wanted)]
    if not complete:
        raise NasError(f"run {run.name!r} has no completed trials to plot")
    front = [t for t in complete if t.pareto]
    by_number = {t.number: t for t in complete}
    progress: list[tuple[float, float]] = []
    hours, seen = 0.0, []
    directions = {n: d for n, d in zip(run.objective_names, run.directions, strict=True)}
    if x is not None:
        dirs = [directions[x], directions[y]]
        worst = [_worst([t.values[n] for t in complete], directions[n]) for n in (x, y)]
    for seconds, number in _charges(trials, ledger):
        hours += seconds / 3600
        t = by_number.get(number)
        if t is None:
            continue
        if x is not None:
            seen.append((t.values[x], t.values[y]))
            progress.append((hours, hypervolume_2d(seen, dirs, worst)))
        else:
            value = t.values[y]
            best = progress[-1][1] if progress else value
            better = value < best if directions[y] == "minimize" else value > best
            progress.append((hours, value if better else best))
    return PlotData(run, x, y, complete, front, progress)


def _charges(trials: Sequence[TrialRecord],
             ledger: Sequence[LedgerEntry] | None) -> list[tuple[float, int | None]]:
    """(device-seconds, number of the trial completing then, else None) in spending order."""
    if ledger:
        return [(e.device_seconds, e.trial_number if e.note == "complete" else None)
                for e in ledger]
    finished = sorted((t for t in trials if t.finished_at is not None),
                      key=lambda t: (t.finished_at, t.number))
    return [(t.device_seconds or 0.0, t.number) for t in finished]


def _worst(values: Sequence[float], direction: str) -> float:
    return max(values) if direction == "minimize" else min(values)


# ------------------------------------------------------------------------------------------------
# drawing
# ------------------------------------------------------------------------------------------------


def _axis_label(run: RunRecord, name: str) -> str:
    direction = dict(zip(run.objective_names, run.directions, strict=True))[name]
    return f"{name}  {'↓ lower' if direction == 'minimize' else '↑ higher'} is better"


def _labels(run: RunRecord, trials: Sequence[TrialRecord]
            ) -> tuple[RunRecord, list[TrialRecord]]:
    """The run and trials with the text the figure draws (run name, mixers) cut short and free
    of control characters: a name from someone else's database may be huge or hold escapes."""
    from dataclasses import replace

    from nas.cli.untrusted import plain

    return (replace(run, name=plain(run.name, 120)),
            [replace(t, short_form=plain(t.short_form, 120)) for t in trials])


def render_png(data: PlotData) -> bytes:
    """The three-panel figure as PNG bytes; NasError if matplotlib is missing. Text is drawn as
    written: `$` starts no math (a run name or metric from a database is not a formula, and a
    malformed one would make matplotlib raise)."""
    try:
        import matplotlib
    except ImportError:
        raise NasError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    with matplotlib.rc_context({"text.parse_math": False}):
        return _render_png(data)


def _render_png(data: PlotData) -> bytes:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 7.5), dpi=110, layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=[1.75, 1])
    ax_main = fig.add_subplot(grid[:, 0])
    ax_progress = fig.add_subplot(grid[0, 1])
    ax_share = fig.add_subplot(grid[1, 1])
    families = sorted({mixer_family(t.short_form) for t in data.complete},
                      key=lambda f: (f.count("+"), f))
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    colors = {f: cmap(i % cmap.N) for i, f in enumerate(families)}
    run = data.run
    if data.x is not None:
        _draw_front(ax_main, data, colors)
    else:
        _draw_single(ax_main, data, colors)
    ax_main.grid(True, alpha=0.3)
    ax_main.legend(title="mixers in the stack", loc="best", fontsize=9, title_fontsize=9,
                   framealpha=0.9)
    # progress panel
    hours = [h for h, _ in data.progress]
    values = [v for _, v in data.progress]
    ax_progress.step(hours, values, where="post", color="tab:blue", lw=1.8)
    ax_progress.plot(hours, values, "o", ms=3.5, color="tab:blue")
    ax_progress.set_xlabel("cumulative device-hours (trials in order of finishing)")
    if data.x is not None:
        ax_progress.set_ylabel("hypervolume")
        ax_progress.set_title(f"hypervolume of the front ({data.y} × {data.x})\nreference "
                              "point: the worst value of each", fontsize=10)
    else:
        ax_progress.set_ylabel(f"best {data.y}")
        ax_progress.set_title(f"best {data.y} so far", fontsize=10)
    ax_progress.grid(True, alpha=0.3)
    ax_progress.ticklabel_format(axis="x", style="plain", useOffset=False)
    # mixer share panel
    shares = mixer_shares(data.front)
    letters = list(shares)
    kinds = {letter: kind for kind, letter in MIXER_LETTERS.items()}
    ticks = [f"{k}\n{kinds.get(k, '')}" for k in letters]
    bars = ax_share.bar(ticks, [100 * shares[k] for k in letters], color="tab:gray",
                        edgecolor="black", lw=0.6)
    for bar, letter in zip(bars, letters, strict=True):
        ax_share.annotate(f"{100 * shares[letter]:.0f}%", (bar.get_x() + bar.get_width() / 2,
                                                          bar.get_height()),
                          ha="center", va="bottom", fontsize=9, xytext=(0, 2),
                          textcoords="offset points")
    ax_share.set_ylim(0, 115)
    ax_share.set_ylabel("% of layers")
    what = "front" if data.x is not None else "best trial(s)"
    count = f"{len(data.front)} trial{'s' if len(data.front) != 1 else ''}"
    ax_share.set_title(f"mixers along the {what} ({count})", fontsize=10)
    ax_share.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{run.name}: {len(data.complete)} completed trials, {len(data.front)} on the "
                 f"front, {run.device_seconds / 3600:.3g} device-hours", fontsize=13)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _draw_front(ax: Any, data: PlotData, colors: dict[str, Any]) -> None:
    x, y, run = data.x, data.y, data.run
    assert x is not None
    for family, color in colors.items():
        members = [t for t in data.complete if mixer_family(t.short_form) == family]
        ax.scatter([t.values[x] for t in members], [t.values[y] for t in members], s=36,
                   color=color, alpha=0.75, label=family, zorder=2)
    x_min = dict(zip(run.objective_names, run.directions, strict=True))[x] == "minimize"
    front = sorted(data.front, key=lambda t: (t.values[x], t.values[y]))
    fx = [t.values[x] for t in front]
    fy = [t.values[y] for t in front]
    ax.step(fx, fy, where="post" if x_min else "pre", color="black", lw=1.4, zorder=3,
            label="Pareto front")
    ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="black", lw=1.6, zorder=4)
    # Labels fan out alternately above/below and away from the step so neighbours do not collide.
    offsets = [(8, 14), (8, -18), (10, 28), (10, -32)]
    for i, t in enumerate(front):
        dx, dy = offsets[i % len(offsets)]
        ax.annotate(f"#{t.number} {t.short_form}", (t.values[x], t.values[y]),
                    xytext=(dx, dy), textcoords="offset points", fontsize=9, zorder=5,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.6", "alpha": 0.9},
                    arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.8})
    ax.set_xlabel(_axis_label(run, x))
    ax.set_ylabel(_axis_label(run, y))
    ax.set_title(f"{y} vs {x}: every completed trial, front circled and labelled "
                 "(#trial mixers)", fontsize=11)
    ax.margins(x=0.12, y=0.12)


def _draw_single(ax: Any, data: PlotData, colors: dict[str, Any]) -> None:
    y, run = data.y, data.run
    for family, color in colors.items():
        members = [t for t in data.complete if mixer_family(t.short_form) == family]
        ax.scatter([t.number for t in members], [t.values[y] for t in members], s=36,
                   color=color, alpha=0.8, label=family, zorder=2)
    minimize = run.directions[0] == "minimize"
    numbers, best = [], []
    for t in data.complete:
        value = t.values[y]
        if best and not (value < best[-1] if minimize else value > best[-1]):
            value = best[-1]
        numbers.append(t.number)
        best.append(value)
    ax.step(numbers, best, where="post", color="black", lw=1.4, label="running best", zorder=3)
    for t in data.front:
        ax.annotate(f"#{t.number} {t.short_form}", (t.number, t.values[y]), xytext=(8, 12),
                    textcoords="offset points", fontsize=9,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.6", "alpha": 0.9})
    ax.set_xlabel("trial number")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(_axis_label(run, y))
    ax.set_title(f"{y} per trial, with the running best", fontsize=11)
    ax.margins(x=0.06, y=0.12)


def render_html(data: PlotData, png: bytes) -> str:
    """A self-contained page: the figure inline (base64) and the front as a table."""
    run = data.run
    names = run.objective_names
    head = ["trial", "mixers", "d_model", "layers", "params", *names]
    rows = []
    for t in data.front:
        cells = [str(t.number), t.short_form, str(t.d_model), str(t.n_layers),
                 format_value("params", t.params),
                 *(format_value(n, (t.values or {}).get(n)) for n in names)]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    goals = ", ".join(f"{n} ({d})" for n, d in zip(names, run.directions, strict=True))
    image = base64.b64encode(png).decode("ascii")
    title = html.escape(f"nas plot: {run.name}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }}
td:nth-child(2), th:nth-child(2) {{ text-align: left; font-family: monospace; }}
th {{ background: #f0f0f0; }}
</style></head><body>
<h1>{html.escape(run.name)}</h1>
<p>{len(data.complete)} completed trials; objectives: {html.escape(goals)}; status
{html.escape(run.status)}.</p>
<img alt="front of {html.escape(run.name)}" src="data:image/png;base64,{image}">
<h2>Pareto front ({len(data.front)} trials)</h2>
<table><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""


def write_plot(run: RunRecord, trials: Sequence[TrialRecord], out: Path, x: str | None,
               y: str | None, ledger: Sequence[LedgerEntry] | None = None) -> PlotData:
    """Draw `run` into `out` (.png or .html); the data drawn."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise NasError(f"unsupported --out suffix {out.suffix or '(none)'!r}; use .png or .html")
    x_name, y_name = choose_objectives(run, x, y)
    data = collect(run, trials, x_name, y_name, ledger)
    png = render_png(data)
    try:
        if suffix == ".png":
            out.write_bytes(png)
        else:
            out.write_text(render_html(data, png), encoding="utf-8")
    except OSError as exc:
        raise NasError(f"cannot write {out}: {exc.strerror or exc}") from None
    return data
