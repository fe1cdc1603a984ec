"""Two agencies' exchange in one process, over a memory pair instead of TLS."""

from __future__ import annotations

import asyncio

from xlink.agency._agency import Agency
from xlink.agency._outcome import AgencyOutcome
from xlink.agency._query import QueryOutcome, QueryService, ask
from xlink.prepare import PreparedSide
from xlink.protocol.config import Role
from xlink.transport import memory_pair

__all__ = ["exchange_in_process", "query_in_process"]


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


async def query_in_process(
    service: QueryService,
    asker: tuple[Agency, PreparedSide],
    *,
    idle_timeout: float = 60.0,
) -> QueryOutcome:
    """One real-time query in one process, over a memory pair instead of TLS: the holder's
    :meth:`QueryService.handle` against the asker's whole session (:func:`ask`) about its
    travellers. Returns the asker's outcome; a protocol error of either side is raised."""
    left, right = memory_pair()
    agency, travellers = asker
    served, outcome = await asyncio.gather(
        service.handle(right, idle_timeout=idle_timeout),
        ask(agency, left, travellers, idle_timeout=idle_timeout),
        return_exceptions=True,
    )
    for item in (outcome, served):
        if isinstance(item, BaseException):
            raise item
    assert isinstance(outcome, QueryOutcome)
    return outcome
