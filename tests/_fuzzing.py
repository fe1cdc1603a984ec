"""What the protocol state-machine fuzz tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, Phase, settings

#: Seconds one message may cost the machine that receives it, whatever it is.
STEP_BUDGET_S = 5.0

_E = TypeVar("_E")


def fuzz_settings(steps: int, examples: int = 300) -> settings:
    """The settings of a state-machine fuzzer: ``examples`` runs of up to ``steps`` steps, no
    deadline (the per-message budget is :func:`timed`'s), no health check (the machines build
    their peers in ``initialize``), and every phase but explain."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )


def timed(receive: Callable[[bytes], _E], data: bytes) -> _E:
    """``receive(data)``, which must take less than :data:`STEP_BUDGET_S` whether it returns or
    raises (a small message must not cost a peer much CPU); checked here, so that a failure
    of the checks after it is never hidden behind this one."""
    start = time.perf_counter()
    try:
        return receive(data)
    finally:
        assert time.perf_counter() - start < STEP_BUDGET_S
