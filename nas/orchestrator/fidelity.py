"""Moved: multi-fidelity (successive halving) lives in `nas.strategies.halving`, beside the other
decisions about what continues. This name stays for code and docs that import it from here."""

from nas.strategies.halving import Fidelity, SuccessiveHalving

__all__ = ["Fidelity", "SuccessiveHalving"]
