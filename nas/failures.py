"""Failure classes: why a trial ended without values, as one word a query and a strategy can use.

Stored in `nas_trials.failure` (None for a trial that did not fail), carried by a strategy's
`Failed` outcome, counted by `nas report` and filterable with
`nas trials RUN --where "failure == 'diverged'"`.

    oom            the candidate did not fit its device (a failed allocation); INFEASIBLE
    diverged       training produced a non-finite loss (NaN/inf); FAIL
    compile_error  a compiler rejected the model (Triton, TorchDynamo/Inductor); FAIL
    timeout        training ran past `search.trial_timeout`; FAIL
    lost           its worker (or the search driver) died under it, retries spent; FAIL
    cancelled      an interrupt (Ctrl-C, SIGTERM) stopped it; FAIL
    abandoned      the search stopped on an error while it ran; FAIL
    interrupted    sampling it was interrupted (Ctrl-C inside the strategy); FAIL
    error          anything else the trial raised; FAIL

oom and diverged say something about the candidate (its size, its recipe's stability), so the
strategy is told them as *infeasible* and learns to avoid the region; the others say nothing
about it. lost, cancelled and abandoned trials got no verdict at all: `nas resume` trains them
again (`UNFINISHED`).

Light on purpose (no torch, no SQLAlchemy): the store, the strategies and the CLI import it.
"""

from __future__ import annotations

OOM = "oom"
DIVERGED = "diverged"
COMPILE_ERROR = "compile_error"
TIMEOUT = "timeout"
LOST = "lost"
CANCELLED = "cancelled"
ABANDONED = "abandoned"
INTERRUPTED = "interrupted"
ERROR = "error"

FAILURE_CLASSES = (OOM, DIVERGED, COMPILE_ERROR, TIMEOUT, LOST, CANCELLED, ABANDONED,
                   INTERRUPTED, ERROR)
INFEASIBLE_FAILURES = (OOM, DIVERGED)  # told to the strategy as Infeasible
UNFINISHED = (LOST, CANCELLED, ABANDONED)  # no verdict on the candidate: resume retrains them

# Modules whose exceptions mean a compiler refused the model (matched on the exception's class
# and its bases, so nothing here imports triton or torch._dynamo).
_COMPILER_MODULES = ("triton.compiler", "triton.runtime.errors", "torch._dynamo.exc",
                     "torch._inductor.exc")


def classify(exc: BaseException) -> str:
    """The failure class of an exception a trial raised in its worker (where the real
    exception object still exists): diverged, oom, compile_error, timeout or error."""
    from nas.evaluate.errors import TrialDiverged, TrialTimedOut

    if isinstance(exc, TrialDiverged):
        return DIVERGED
    if isinstance(exc, TrialTimedOut):
        return TIMEOUT
    if is_out_of_memory(exc):
        return OOM
    if any(cls.__module__.startswith(_COMPILER_MODULES) for cls in type(exc).__mro__):
        return COMPILE_ERROR
    return ERROR


# Words of a RuntimeError from a failed allocation (CPU allocator, or CUDA in older torch).
_OOM_WORDS = ("out of memory", "can't allocate memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA), Python's MemoryError, or a RuntimeError whose words
    say an allocation failed."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _OOM_WORDS)
