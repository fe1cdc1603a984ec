"""The conformance suite for implementers of the xlink protocols (docs/conformance.md; the
contract is protocols/conformance.md).

A *kit* (:func:`write_kit`) holds the keys, the MOU and the lists both sides load. The
implementation under test (xlink's own: :func:`run_agent`) listens and runs one exchange per
connection; the runner (:func:`run_suite`) plays each case of the suite (:func:`all_cases`)
against it over pinned mutual TLS and judges it (:class:`Verdict`); :mod:`.report` writes the
JSON, JUnit and text reports. :func:`run_in_process` runs both in one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from xlink.conformance.agent import outcome_record, run_agent
from xlink.conformance.cases import all_cases, select
from xlink.conformance.kit import Kit, load_kit, write_kit
from xlink.conformance.model import Case, Expect, Observation, Outcome, Result, Verdict, judge
from xlink.conformance.runner import run_suite
from xlink.crypto.rand import system_random

__all__ = [
    "Case",
    "Expect",
    "Kit",
    "Observation",
    "Outcome",
    "Result",
    "Verdict",
    "all_cases",
    "judge",
    "load_kit",
    "outcome_record",
    "run_agent",
    "run_in_process",
    "run_suite",
    "select",
    "write_kit",
]


async def run_in_process(
    kit: Kit,
    role: str,
    workdir: Path,
    *,
    idle_timeout: float = 1.0,
    patterns: Iterable[str] = (),
    strict: bool = False,
    on_result: Callable[[Result], object] | None = None,
) -> list[Result]:
    """xlink's agent in ``role`` and the runner in one event loop, over mutual TLS on
    127.0.0.1: the whole suite (or the cases matching ``patterns``)."""
    loop = asyncio.get_running_loop()
    listening: asyncio.Future[int] = loop.create_future()

    def clock() -> datetime:
        return datetime.now(UTC)

    outcomes = workdir / "outcomes.jsonl"
    agent = asyncio.create_task(
        run_agent(
            kit,
            role=role,
            host="127.0.0.1",
            port=0,
            workdir=workdir / "agent",
            outcomes=outcomes,
            clock=clock,
            rng=system_random,
            idle_timeout=idle_timeout,
            on_listening=listening.set_result,
        )
    )
    try:
        port = await asyncio.wait_for(asyncio.shield(listening), 30)
        return await run_suite(
            kit,
            host="127.0.0.1",
            port=port,
            role=role,
            outcomes=outcomes,
            workdir=workdir / "runner",
            clock=clock,
            rng=system_random,
            idle_timeout=idle_timeout,
            patterns=patterns,
            strict=strict,
            on_result=on_result,
        )
    finally:
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)
