"""Whether other work competes with a timing for this machine's processors (oversubscription).

Contract:

- `snapshot()` reads the machine's CPU accounting (Linux ``/proc/stat``: busy and total ticks
  of the CPUs this process may run on, and ``procs_running``) together with this process's own
  CPU time and its threads that are running now. None where ``/proc`` is not there.
- `load_between(a, b, threads)` turns two snapshots into a `Load`: how many cores' worth of CPU
  time *other* processes used between them (the machine's busy time minus this process's own,
  so a timing's own threads — OpenMP workers spinning included — never count against it; the
  hypervisor's steal time counts as other work) and how many of their threads were runnable at
  the two ends (``procs_running`` minus this process's running threads).
- `probe(threads, seconds)` measures a `Load` over a short window during which this thread
  sleeps, sampling the runnable threads several times.
- A `Load` is `contended` when other work needs more cores than the `threads` of the timing
  leave free, by more than `SLACK` cores: ``others > cores - threads + SLACK``, for the busy
  cores and for the mean runnable threads alike. Busy cores are only judged over a window long
  enough to hold `MIN_TICKS` ticks (a short timing's tick count says nothing).
- `busy_warning(seconds)` is one line for the start of a search when other processes keep at
  least `BUSY_CORES` cores busy over a `seconds` probe, else None.
- `gpu_others(device)` is the number of other processes holding a context on a CUDA device,
  where NVML (pynvml) can tell; None where it cannot.

Nothing here waits or retries: nas.evaluate.measurement does, around each timing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from dataclasses import dataclass

SLACK = 0.5  # cores of other work tolerated beyond what the timing's threads leave free
MIN_TICKS = 20  # ticks (all allowed CPUs together) a window needs before its busy time counts
PROBE_SECONDS = 0.1
PROBE_SAMPLES = 5
BUSY_CORES = 0.5  # other processes' load that a search's start reports


@dataclass(frozen=True)
class Snapshot:
    """The machine's CPU accounting at one moment (`snapshot`)."""

    at: float  # time.monotonic()
    busy_ticks: int  # non-idle ticks of the allowed CPUs, since boot
    total_ticks: int  # all ticks of the allowed CPUs, since boot
    procs_running: int  # runnable threads on the whole machine, now
    own_cpu_seconds: float  # this process's CPU time (all its threads), since it started
    own_running: int  # this process's threads runnable now
    cores: int  # CPUs this process may run on
    cpus: int  # CPUs of the machine (procs_running counts threads on all of them)


@dataclass(frozen=True)
class Load:
    """Other processes' demand for the processors over a window, against one timing's needs."""

    cores: int  # CPUs this process may run on
    cpus: int  # CPUs of the machine
    threads: int  # threads the timing uses
    others_busy: float | None  # cores' worth of CPU time used by others (None: window too short)
    others_runnable: float  # mean runnable threads of other processes
    seconds: float

    @property
    def contended(self) -> bool:
        """Other work needs more than the cores the timing leaves free (+ SLACK)."""
        busy_limit = self.cores - self.threads + SLACK
        runnable_limit = self.cpus - self.threads + SLACK
        return ((self.others_busy is not None and self.others_busy > busy_limit)
                or self.others_runnable > runnable_limit)

    def describe(self) -> str:
        """E.g. '1.9 of 2 cores busy with other processes, 2.0 of their threads runnable'."""
        busy = "?" if self.others_busy is None else f"{self.others_busy:.1f}"
        return (f"{busy} of {self.cores} cores busy with other processes, "
                f"{self.others_runnable:.1f} of their threads runnable")


def parse_proc_stat(text: str, cpus: Collection[int] | None = None) -> tuple[int, int, int]:
    """(busy ticks, total ticks, procs_running) from the text of /proc/stat. Ticks are summed
    over the per-CPU lines of `cpus` (all CPUs when None); idle and iowait are idle, the rest
    (user, nice, system, irq, softirq, steal) busy; guest time is already inside user."""
    busy = total = running = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        name = fields[0]
        if name.startswith("cpu") and name != "cpu":
            if cpus is not None and int(name[3:]) not in cpus:
                continue
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq soft steal
            ticks += [0] * (8 - len(ticks))
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
        elif name == "procs_running":
            running = int(fields[1])
    return busy, total, running


def parse_thread_state(stat_line: str) -> str:
    """The state letter (R, S, D, ...) of a /proc/<pid>/task/<tid>/stat line; the command name
    in parentheses may itself hold spaces and parentheses."""
    return stat_line[stat_line.rindex(")") + 2]


def _own_running() -> int:
    running = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="utf-8") as stat:
                running += parse_thread_state(stat.read()) == "R"
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return max(running, 1)  # the thread reading this runs


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def snapshot() -> Snapshot | None:
    """The CPU accounting now, or None where /proc/stat cannot be read (not Linux)."""
    try:
        with open("/proc/stat", encoding="utf-8") as stat:
            text = stat.read()
    except OSError:
        return None
    allowed = _allowed_cpus()
    busy, total, running = parse_proc_stat(text, allowed)
    cpus = sum(1 for line in text.splitlines() if line[:3] == "cpu" and line[3:4].isdigit())
    return Snapshot(at=time.monotonic(), busy_ticks=busy, total_ticks=total,
                    procs_running=running, own_cpu_seconds=time.process_time(),
                    own_running=_own_running(), cores=len(allowed) if allowed else cpus,
                    cpus=cpus or 1)


def load_between(a: Snapshot, b: Snapshot, threads: int,
                 runnable: Collection[float] = ()) -> Load:
    """Other processes' load between snapshots `a` and `b` (b taken later), judged for a timing
    with `threads` threads. `runnable` adds samples of other processes' runnable threads taken
    in between (the two ends are always sampled)."""
    seconds = max(b.at - a.at, 1e-9)
    ticks = b.total_ticks - a.total_ticks
    others_busy = None
    if ticks >= MIN_TICKS:
        busy_cores = (b.busy_ticks - a.busy_ticks) / ticks * a.cores
        own_cores = (b.own_cpu_seconds - a.own_cpu_seconds) / seconds
        others_busy = max(0.0, busy_cores - own_cores)
    samples = [*runnable, *(max(0, s.procs_running - s.own_running) for s in (a, b))]
    return Load(cores=a.cores, cpus=a.cpus, threads=threads, others_busy=others_busy,
                others_runnable=sum(samples) / len(samples), seconds=seconds)


def probe(threads: int, seconds: float = PROBE_SECONDS,
          samples: int = PROBE_SAMPLES) -> Load | None:
    """Other processes' load over the next `seconds` (this thread sleeping meanwhile), judged
    for a timing with `threads` threads; None where it cannot be read."""
    start = snapshot()
    if start is None:
        return None
    between = []
    for _ in range(max(0, samples - 2)):
        time.sleep(seconds / max(1, samples - 1))
        now = snapshot()
        if now is not None:
            between.append(max(0, now.procs_running - now.own_running))
    time.sleep(seconds / max(1, samples - 1))
    end = snapshot()
    return None if end is None else load_between(start, end, threads, between)


def busy_warning(seconds: float = 0.3) -> str | None:
    """'warning: this machine is busy: ...' when other processes keep at least BUSY_CORES
    cores busy over the next `seconds`; None when they do not or it cannot be read."""
    load = probe(threads=1, seconds=seconds, samples=6)
    if load is None or load.others_busy is None or load.others_busy < BUSY_CORES:
        return None
    return (f"warning: this machine is busy: {load.others_busy:.1f} of {load.cores} cores in "
            "use by other processes; latencies timed meanwhile may be flagged contended (and "
            "are retried) and training will be slower")


def gpu_others(device) -> int | None:
    """How many other processes hold a context on CUDA `device` (a torch.device on CUDA), where
    NVML (the optional pynvml package) can tell; None where it cannot."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        try:
            uuid = str(torch.cuda.get_device_properties(device).uuid)
            handle = pynvml.nvmlDeviceGetHandleByUUID(
                uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
            processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no pynvml, no driver, no permission: cannot tell
        return None
    return sum(1 for p in processes if p.pid != os.getpid())
