"""Two agencies' exchange in one process, over a memory pair instead of TLS."""

from __future__ import annotations

import asyncio

from xlink.agency._agency import Agency
from xlink.agency._outcome import AgencyOutcome
from xlink.prepare import PreparedSide
from xlink.protocol.config import Role
from xlink.transport import memory_pair

__all__ = ["exchange_in_process"]


async def exchange_in_process(
    initiator: tuple[Agency, PreparedSide],
    responder: tuple[Agency, PreparedSide],
    *,
    idle_timeout: float = 60.0,
) -> tuple[AgencyOutcome, AgencyOutcome]:
    """Two agencies' exchange in one process, over a memory pair instead of TLS: the same
    :meth:`Agency.exchange` on each side. Returns ``(initiator's, responder's)`` outcomes."""
    left, right = memory_pair()
    (a, a_side), (b, b_side) = initiator, responder
    results = await asyncio.gather(
        a.exchange(left, a_side, role=Role.INITIATOR, idle_timeout=idle_timeout),
        b.exchange(right, b_side, role=Role.RESPONDER, idle_timeout=idle_timeout),
        return_exceptions=True,
    )
    for item in results:
        if isinstance(item, BaseException):
            raise item
    first, second = results
    assert isinstance(first, AgencyOutcome) and isinstance(second, AgencyOutcome)
    return first, second
