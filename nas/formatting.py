"""How nas writes numbers for people: durations and objective or metric values.

Pure functions of their arguments, no imports beyond the standard library: the CLI's tables,
the reports, the plots and the live progress display all write values through these, so one
value reads the same everywhere.
"""

from __future__ import annotations


def format_seconds(seconds: float) -> str:
    """Compact human duration: 42s, 3m 05s, 2h 10m."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_value(name: str, value: float | None) -> str:
    """The value of objective or metric `name` in a table cell: '-' for none, `params` as a
    whole number with thousands separators, small values to 4 significant digits, large ones
    (tokens/s, bytes) as whole numbers, huge ones in exponent form."""
    if value is None:
        return "-"
    if name == "params":
        return f"{int(value):,}"
    if abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:,.0f}" if abs(value) < 1e15 else f"{value:.4e}"  # tokens/s, bytes
