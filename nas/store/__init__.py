"""The results database: runs, trials, curves, the budget ledger. No torch is imported here."""

from nas.store.engine import DEFAULT_URL
from nas.store.store import (
    COMPLETE,
    DUPLICATE,
    FAIL,
    INFEASIBLE,
    PAUSED,
    PRUNED,
    RUNNING,
    TRIAL_STATES,
    ArtifactRecord,
    Decision,
    LedgerEntry,
    RunRecord,
    Store,
    TrialRecord,
)

__all__ = [
    "COMPLETE", "DEFAULT_URL", "DUPLICATE", "FAIL", "INFEASIBLE", "PAUSED", "PRUNED", "RUNNING",
    "TRIAL_STATES",
    "ArtifactRecord", "Decision", "LedgerEntry",
    "RunRecord", "Store", "TrialRecord",
]
