"""Search spaces: YAML schema, decision DAG, define-by-run sampling into ArchSpecs."""

from nas.searchspace.compile import Condition, SearchSpace
from nas.searchspace.constraints import Constraint
from nas.searchspace.count import CountResult, count_architectures
from nas.searchspace.layout import attention_count, attention_positions
from nas.searchspace.loader import load, loads

__all__ = [
    "Condition", "Constraint", "CountResult", "SearchSpace", "attention_count",
    "attention_positions", "count_architectures", "load", "loads",
]
