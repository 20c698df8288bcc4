"""The trial pipeline a worker runs: latency, training, held-out scoring."""

from nas.evaluate.errors import TrialDiverged
from nas.evaluate.latency import SUPPORTED_PHASES, LatencyResult, measure_latency
from nas.evaluate.training import EVAL_SEED_OFFSET, TrainResult, evaluate, lr_factor, train
from nas.evaluate.trial import TrialRequest, TrialResult, run_trial

__all__ = [
    "EVAL_SEED_OFFSET",
    "SUPPORTED_PHASES",
    "LatencyResult",
    "TrainResult",
    "TrialDiverged",
    "TrialRequest",
    "TrialResult",
    "evaluate",
    "lr_factor",
    "measure_latency",
    "run_trial",
    "train",
]
