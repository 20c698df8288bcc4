"""Both executors satisfy `nas.orchestrator.executor_base.Executor` structurally: every method
of the protocol with the same parameters, and the `workers` / `threads` attributes. Ray's is
checked on the class (no cluster needed) where ray imports; tests/ray checks a connected one."""

from __future__ import annotations

import inspect

import pytest

from nas.orchestrator.executor import LocalExecutor
from nas.orchestrator.executor_base import Executor

METHODS = ("submit", "cancel", "heal", "shutdown")


def parameters(function) -> list[tuple[str, object]]:
    """A method's parameters after self: names, kinds and defaults (not annotations)."""
    listed = list(inspect.signature(function).parameters.values())[1:]
    return [(p.name, p.kind, p.default) for p in listed]


def check_methods(cls: type) -> None:
    for name in METHODS:
        assert callable(getattr(cls, name, None)), f"{cls.__name__} lacks {name}()"
        assert parameters(getattr(cls, name)) == parameters(getattr(Executor, name)), name


def test_local_executor_satisfies_the_protocol():
    check_methods(LocalExecutor)
    executor = LocalExecutor(2, threads=3, devices=["cpu"])  # workers start at the first submit
    try:
        assert isinstance(executor, Executor)
        assert (executor.workers, executor.threads) == (2, 3)
    finally:
        executor.shutdown(cancel=True)


def test_ray_executor_satisfies_the_protocol():
    pytest.importorskip("ray")
    from nas.orchestrator.ray_executor import RayExecutor

    check_methods(RayExecutor)
    init = inspect.getsource(RayExecutor.__init__)
    assert "self.workers =" in init and "self.threads =" in init


def test_the_protocol_names_the_contract():
    members = {name for name in dir(Executor) if not name.startswith("_")}
    assert set(METHODS) <= members
    assert {"workers", "threads"} <= set(Executor.__annotations__)
    assert not isinstance(object(), Executor)
