"""`nas measure`: time one architecture by hand, by phase and sequence length (latency, and the
throughput it implies; peak memory unless --no-memory; the decode state's bytes).

The target is a trial of a run (RUN/NUMBER, from the database) or an ArchSpec JSON file (what
`nas space sample --format json` prints an item of, or `nas export` writes as arch.json). The
untrained model is timed like a search times it (nas.evaluate.latency); with a database — the
trial's, or `--storage` for a file — the measurements join its latency cache, so a search on
this device will not time the architecture again.

An architecture whose mixer is named by import path (a user mixer) runs the user's code when its
model is built: that needs `--allow-code`, as `nas search` does; without it the command stops,
naming the module's file, before anything is imported.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from nas.errors import NasError

MAX_TOKENS = 16_777_216  # batch × seq_len of one measurement: the tokens of one forward pass
MEMORY_FIX = "fix: smaller --seq-len/--batch"


def max_threads() -> int:
    """The most --threads this machine takes: 4 per core, never more than MAX_THREADS (an OpenMP
    pool far past the cores only thrashes, and a huge one runs libgomp out of memory)."""
    from nas.searchspace.schema import MAX_THREADS

    return max(1, min(MAX_THREADS, 4 * (os.cpu_count() or 1)))


def check_sizes(seq_len: list[int], batch: int, threads: int | None) -> None:
    """NasError, with a fix, for a --seq-len, --batch or --threads past what a measurement
    takes (the limits a space file's objectives have)."""
    # nas.searchspace imports torch (through nas.blocks): only when a measurement is checked, so
    # that `import nas.cli` (every command's start) stays light.
    from nas.searchspace.schema import MAX_BATCH, MAX_SEQ_LEN

    if batch > MAX_BATCH:
        raise NasError(f"--batch {batch} is too large; fix: use at most {MAX_BATCH:,}")
    for length in seq_len:
        if length > MAX_SEQ_LEN:
            raise NasError(f"--seq-len {length} is too large; fix: use at most {MAX_SEQ_LEN:,}")
        if batch * length > MAX_TOKENS:
            raise NasError(f"--batch {batch} × --seq-len {length} is {batch * length:,} tokens, "
                           f"more than {MAX_TOKENS:,}; fix: a smaller --batch or --seq-len")
    if threads is not None and threads > max_threads():
        raise NasError(f"--threads {threads} is too many for this machine "
                       f"({os.cpu_count() or 1} cores); fix: use at most {max_threads()}")


def measure(
    target: str = typer.Argument(..., metavar="RUN/NUMBER|SPEC.json",
                                 help="A trial (e.g. quickstart-1/7) or an ArchSpec JSON file."),
    seq_len: list[int] = typer.Option([512], "--seq-len", min=1,
                                      help="Context length (repeatable)."),
    batch: int = typer.Option(1, "--batch", min=1),
    phase: list[str] = typer.Option(["prefill", "decode"], "--phase",
                                    help="prefill, decode or train_step (repeatable)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads (default: torch's)."),
    storage: str = typer.Option(None, "--storage", help="Database whose latency cache gets the "
                                "results (default for RUN/NUMBER: $NAS_STORAGE or nas.db)."),
    memory: bool = typer.Option(True, "--memory/--no-memory",
                                help="Also measure each phase's peak memory (one more pass)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    allow_code: bool = typer.Option(False, "--allow-code", envvar="NAS_ALLOW_CODE",
                                    help="Import and run the code of a mixer the architecture "
                                    "names by import path (a user mixer). Also "
                                    "NAS_ALLOW_CODE=1."),
) -> None:
    """Time one architecture by phase and sequence length on this machine: latency, throughput,
    peak memory and decode state."""
    check_sizes(seq_len, batch, threads)
    try:
        _measure(target, seq_len, batch, phase, device, threads, storage, memory, fmt,
                 allow_code)
    except KeyboardInterrupt:  # Ctrl-C: one line, nothing recorded
        sys.stderr.write("interrupted: nothing was measured or recorded\n")
        raise typer.Exit(130) from None
    except (RuntimeError, MemoryError) as exc:
        from nas.failures import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        raise NasError(f"{target}: measuring --batch {batch} at --seq-len "
                       f"{max(seq_len)} needs more memory than this machine has; "
                       f"{MEMORY_FIX}") from None


def _measure(target: str, seq_len: list[int], batch: int, phase: list[str], device: str,
             threads: int | None, storage: str | None, memory: bool, fmt: str,
             allow_code: bool) -> None:
    import torch

    from nas.blocks import build_model
    from nas.cli.common import console
    from nas.cli.render import CONTENDED_NOTE, contended_text, spread_text
    from nas.evaluate.device import device_fingerprint, fingerprint_hash
    from nas.evaluate.latency import SUPPORTED_PHASES, measure_latency
    from nas.evaluate.measurement import time_uncontended, value_of, watched
    from nas.evaluate.memory import MIB, measure_peak_memory
    from nas.spec import ArchSpec
    from nas.usercode import spec_refusal

    unknown = [p for p in phase if p not in SUPPORTED_PHASES]
    if unknown:
        raise NasError(f"unknown --phase {unknown[0]!r}; use {', '.join(SUPPORTED_PHASES)}")
    if fmt not in ("table", "json"):
        raise NasError(f"unknown --format {fmt!r}; use table or json")
    store = None
    path = Path(target)
    if path.suffix == ".json" or _is_file(path):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, list):  # `nas space sample --format json` prints a list
                if len(data) != 1:
                    raise NasError(f"{target} holds {len(data)} specs; measure one at a time "
                                   "(e.g. `nas space sample SPACE -n 1 --format json`)")
                data = data[0]
            spec = ArchSpec.from_json(json.dumps(data))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NasError(f"{target}: not an ArchSpec JSON file ({exc})") from None
        if storage:
            store = _store(storage)
    else:
        from nas.cli.common import open_store, trial_ref

        store = open_store(storage)
        spec = trial_ref(store, target)[1].arch
    refusal = None if allow_code else spec_refusal(spec, f"{target}: the architecture")
    if refusal is not None:  # building the model would import the user's module
        raise NasError(refusal)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NasError("--device cuda: no CUDA device here")
    if threads is not None:
        torch.set_num_threads(threads)

    model = build_model(spec, seed=0, device=device)
    fingerprint = device_fingerprint(device)
    key = fingerprint_hash(fingerprint)
    rows = []
    for which in phase:
        for length in seq_len:
            timing, contended = time_uncontended(
                lambda: measure_latency(model, batch=batch, seq_len=length,  # noqa: B023
                                        vocab_size=spec.vocab_size, phase=which),  # noqa: B023
                lambda measure: watched(measure, torch.device(device)))
            row = {"fingerprint_hash": key, "phase": which, "batch": batch,
                   "seq_len": length, "median_ms": timing.median_ms,
                   "spread": timing.spread, "repeats": timing.repeats,
                   "contended": contended,
                   "tokens_per_s": value_of("throughput", timing.median_ms, which, batch,
                                            length),
                   "state_bytes": batch * model.state_bytes(length)}
            if memory:
                row["peak_mib"] = measure_peak_memory(
                    model, batch=batch, seq_len=length, vocab_size=spec.vocab_size,
                    phase=which) / MIB
            rows.append(row)
    if store is not None:
        store.record_latency(spec.arch_hash, fingerprint, rows)
    if fmt == "json":
        console.print_json(json.dumps({"arch": spec.short_form(), "arch_hash": spec.arch_hash,
                                       "fingerprint": fingerprint, "measurements": rows}))
        return
    from rich.table import Table

    table = Table(title=f"{spec.short_form()} · d_model {spec.d_model} · "
                        f"{', '.join(f'{k}={v}' for k, v in fingerprint.items())}")
    columns = ["phase", "batch", "seq_len", "median ms", "spread", "repeats", "tokens/s",
               *(["peak MiB"] if memory else []), "state bytes", "contended"]
    for column in columns:
        table.add_column(column, justify="left" if column == "phase" else "right")
    for r in rows:
        table.add_row(r["phase"], str(r["batch"]), str(r["seq_len"]), f"{r['median_ms']:.3f}",
                      spread_text(r["spread"]), str(r["repeats"]),
                      f"{r['tokens_per_s']:,.0f}", *([f"{r['peak_mib']:.2f}"] if memory else []),
                      f"{r['state_bytes']:,}", contended_text(r["contended"]))
    console.print(table)
    if any(r["contended"] for r in rows):
        console.print(f"[yellow]warning:[/] {CONTENDED_NOTE}", highlight=False)


def _store(url: str):
    """The database --storage names for a spec file's measurements (created if new)."""
    from nas.store import Store

    return Store(url)


def _is_file(path: Path) -> bool:
    """Whether TARGET names a file; False for what cannot be a path (a name too long for the
    OS, a NUL byte): such a TARGET is read as RUN/NUMBER, which reports it if it is neither."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
