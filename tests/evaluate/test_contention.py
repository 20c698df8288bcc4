"""Oversubscription checks around a timing: /proc parsing and the verdict on synthetic
snapshots, then the real thing against busy-loop processes pinned to every core."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from nas.blocks import build_model
from nas.evaluate import contention
from nas.evaluate.contention import Load, Snapshot, load_between, parse_proc_stat
from nas.evaluate.latency import LatencyResult
from nas.evaluate.measurement import cacheable, time_uncontended
from nas.evaluate.trial import measure_entries

linux_only = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")

PROC_STAT = """cpu  300 10 100 1000 20 0 5 15 7 0
cpu0 100 5 50 600 10 0 2 5 7 0
cpu1 200 5 50 400 10 0 3 10 0 0
intr 1 2 3
ctxt 99
procs_running 3
procs_blocked 0
"""


def test_proc_stat_ticks_count_steal_as_busy_and_iowait_as_idle():
    # cpu0: busy 100+5+50+0+2+5 = 162 of 772; cpu1: 200+5+50+0+3+10 = 268 of 678
    assert parse_proc_stat(PROC_STAT) == (162 + 268, 772 + 678, 3)
    assert parse_proc_stat(PROC_STAT, cpus={1}) == (268, 678, 3)


def test_thread_state_survives_parentheses_in_the_command_name():
    assert contention.parse_thread_state("42 (a) b (c)) R 1 42 42 0") == "R"
    assert contention.parse_thread_state("43 (python3) S 1 43") == "S"


def snap(at, busy, total, running=1, own=0.0, own_running=1, cores=2, cpus=2):
    return Snapshot(at=at, busy_ticks=busy, total_ticks=total, procs_running=running,
                    own_cpu_seconds=own, own_running=own_running, cores=cores, cpus=cpus)


def test_own_cpu_time_and_own_running_threads_do_not_count_as_contention():
    # 1 s on 2 cores = 200 ticks, all busy; this process used 2 CPU-seconds itself (its two
    # timing threads) and both were running at the ends: nobody else is there
    mine = load_between(snap(0.0, 0, 0, running=2, own_running=2),
                        snap(1.0, 200, 200, running=2, own=2.0, own_running=2), threads=2)
    assert mine.others_busy == pytest.approx(0.0) and mine.others_runnable == 0.0
    assert not mine.contended


def test_others_beyond_the_free_cores_are_contended_within_them_not():
    # others used 1 core for 1 s, one of their threads runnable: a 1-thread timing still has a
    # core of its own on 2 cores; a 2-thread timing does not
    a, b = snap(0.0, 0, 0, running=2), snap(1.0, 100, 200, running=2)
    assert load_between(a, b, threads=1).others_busy == pytest.approx(1.0)
    assert not load_between(a, b, threads=1).contended
    assert load_between(a, b, threads=2).contended
    # both cores busy with others: contended even for one thread
    assert load_between(a, snap(1.0, 200, 200, running=3), threads=1).contended


def test_a_window_too_short_to_hold_ticks_is_judged_by_runnable_threads_only():
    short = load_between(snap(0.0, 0, 0, running=1), snap(0.01, 2, 2, running=1), threads=1)
    assert short.others_busy is None and not short.contended
    crowded = load_between(snap(0.0, 0, 0, running=4), snap(0.01, 2, 2, running=4), threads=1)
    assert crowded.others_busy is None and crowded.contended  # 3 others' threads on 2 CPUs


def test_a_load_says_what_it_saw():
    load = Load(cores=2, cpus=2, threads=1, others_busy=1.94, others_runnable=2.0, seconds=0.1)
    assert load.describe() == ("1.9 of 2 cores busy with other processes, 2.0 of their "
                               "threads runnable")


def result(ms):
    return LatencyResult(median_ms=ms, spread=0.01, repeats=5)


def test_a_contended_timing_is_taken_again_and_the_first_clean_one_kept():
    verdicts = iter([(result(9.0), True), (result(1.0), False), (result(5.0), False)])
    kept, contended = time_uncontended(lambda: None, lambda measure: next(verdicts),
                                       wait_seconds=0)
    assert kept.median_ms == 1.0 and contended is False


def test_when_every_attempt_is_contended_the_fastest_is_kept_and_flagged():
    verdicts = iter([(result(9.0), True), (result(3.0), True), (result(5.0), True)])
    calls = []

    def watch(measure):
        calls.append(1)
        return next(verdicts)

    kept, contended = time_uncontended(lambda: None, watch, attempts=3, wait_seconds=0)
    assert kept.median_ms == 3.0 and contended is True and len(calls) == 3


def test_unknown_load_is_not_retried():
    calls = []

    def watch(measure):
        calls.append(1)
        return result(2.0), None

    assert time_uncontended(lambda: None, watch)[1] is None and len(calls) == 1


def test_contended_or_noisy_cache_rows_do_not_answer_later_trials():
    rows = [{"spread": 0.02, "contended": True}, {"spread": 0.5, "contended": False},
            {"spread": 0.02, "contended": False}, {"spread": 0.02}]
    assert cacheable(rows) == rows[2:]


# -- against real load ----------------------------------------------------------------------

BURN = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


@pytest.fixture
def burners():
    """One busy-loop process pinned to each CPU this process may use; killed afterwards."""
    cpus = sorted(os.sched_getaffinity(0))
    started = [subprocess.Popen([sys.executable, "-c", BURN, str(cpu)]) for cpu in cpus]
    time.sleep(0.5)  # let them start spinning
    try:
        assert all(p.poll() is None for p in started), "a burner died"
        yield len(cpus)
    finally:
        for p in started:
            p.kill()
        for p in started:
            p.wait()


@linux_only
def test_busy_loops_on_every_core_are_reported_as_contention(burners):
    load = contention.probe(threads=1, seconds=0.3)
    assert load is not None
    assert load.others_busy is not None and load.others_busy >= burners - 0.5
    assert load.others_runnable >= burners - 0.5
    assert load.contended


@linux_only
def test_a_latency_timed_among_busy_loops_is_flagged_contended(make_spec, burners):
    model = build_model(make_spec(), seed=0)
    entries = [{"name": "latency_ms", "batch": 1, "seq_len": 16}]
    metrics, measured = measure_entries(model, entries, vocab_size=16, seed=0,
                                        fingerprint_key="fp")
    assert metrics["latency_ms_contended"] == 1.0
    assert measured[0]["contended"] is True
    assert cacheable(measured) == []


@linux_only
def test_a_busy_machine_is_one_warning_line(burners):
    warning = contention.busy_warning()
    assert warning is not None and warning.startswith("warning: this machine is busy: ")
    assert f"of {burners} cores in use by other processes" in warning
    assert "\n" not in warning
