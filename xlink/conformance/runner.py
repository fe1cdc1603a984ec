"""``xlink conformance run``: play every case against an implementation under test listening
at ``HOST:PORT`` and judge it (protocols/conformance.md §4-5)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Final

from xlink.conformance.agent import ROLES, fresh_workdir
from xlink.conformance.cases import all_cases, select
from xlink.conformance.kit import AGENT_AGENCY, RUNNER_AGENCY, Kit
from xlink.conformance.model import Case, Observation, Outcome, Result, Verdict, judge
from xlink.conformance.script import PlayContext, releases_on_wire
from xlink.crypto.rand import RandomSource
from xlink.documents import parse_document
from xlink.errors import DocumentError, InputError, XlinkError
from xlink.protocol.config import Role
from xlink.transport.connect import connect

__all__ = ["CHUNKS", "run_suite"]

CHUNKS: Final = 4
"""Chunks the runner sends its set of one padding bucket in, so that the cases about chunk
order have chunks to reorder."""


async def run_suite(
    kit: Kit,
    *,
    host: str,
    port: int,
    role: str,
    outcomes: Path,
    workdir: Path,
    clock: Callable[[], datetime],
    rng: RandomSource,
    idle_timeout: float = 2.0,
    patterns: Iterable[str] = (),
    strict: bool = False,
    on_result: Callable[[Result], object] | None = None,
) -> list[Result]:
    """Play the cases for an agent in ``role`` (``initiator``, ``responder``, ``holder``) at
    ``host:port``, one connection each, in order; ``outcomes`` is the agent's outcomes file
    and ``idle_timeout`` the idle timeout it was started with; the SHOULD cases too when
    ``strict``. Returns the results."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    runner_role = Role.RESPONDER if role == "initiator" else Role.INITIATOR  # holder: unused
    cases = select(all_cases(), role, patterns, strict=strict)
    if patterns and len(cases) == 2:  # the sanity cases only
        raise InputError(f"no case for a {role} matches {' '.join(patterns)}")
    fresh_workdir(workdir)
    with kit.open_agency(RUNNER_AGENCY, workdir / "prepare", clock=clock, rng=rng) as agency:
        side = agency.prepare(kit.files[RUNNER_AGENCY])
        disjoint = agency.prepare(kit.disjoint)
        agent_list = agency.prepare(kit.files[AGENT_AGENCY])
    memory: dict[str, object] = {}
    results: list[Result] = []
    expected: int | None = None  # the agent's next connection number, once one is known
    for case in cases:
        with kit.open_agency(
            RUNNER_AGENCY, workdir / f"{case.tc_id:04d}-{role}", clock=clock, rng=rng
        ) as agency:
            own = agency.mou.party(RUNNER_AGENCY)
            memory["max_runner_set_size"] = own.max_set_size
            memory["schema_keys"] = len(agency.schema.keys)
            chunk = max(agency.mou.padding_bucket // CHUNKS, 1)
            config = dataclasses.replace(agency.session_config(runner_role), chunk_size=chunk)
            before = _lines(outcomes)
            seen = Observation(idle_timeout=idle_timeout)
            try:
                conn = await connect(host, port, **agency.tls_options(), timeout=10.0)
            except XlinkError as exc:
                if not results:  # nothing to play against: say so at once
                    raise
                result = Result(case, role, Verdict.FAILED, f"cannot connect: {exc}", seen, None)
            else:
                ctx = PlayContext(
                    conn,
                    agency,
                    side,
                    disjoint,
                    agent_list,
                    config,
                    2 * idle_timeout,
                    seen,
                    memory,
                    role,
                )
                try:
                    await asyncio.wait_for(case.play(ctx), 10 * idle_timeout + 10)
                except TimeoutError:
                    seen.notes.append("the case did not end in time")
                except Exception as exc:
                    seen.notes.append(f"the runner could not play the case: {exc!r}")
                finally:
                    await conn.close(timeout=1.0)
                seen.wire_releases = releases_on_wire(seen.received)
                outcome, problem = await _next_outcome(
                    outcomes, before, 4 * idle_timeout + 5, expected
                )
                if problem is not None:
                    seen.notes.append(problem)
                if outcome is not None:
                    expected = outcome.connection + 1
                if not results and outcome is not None and outcome.role != role:
                    raise InputError(
                        f"the agent reports the role {outcome.role}: run with --role "
                        f"{outcome.role}, or start the agent with --role {role}"
                    )
                if not results and outcome is None and _lines(outcomes) == before:
                    raise InputError(
                        f"{outcomes}: no outcome line came for the first case within "
                        f"{4 * idle_timeout + 5:g} s; --outcomes must name the file the "
                        "implementation under test appends one line to per connection "
                        "(protocols/conformance.md §3.3)"
                    )
                verdict, reason = judge(case, seen, outcome)
                result = Result(case, role, verdict, reason, seen, outcome)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _lines(path: Path) -> int:
    """The complete (newline-terminated) lines of ``path``."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


async def _next_outcome(
    path: Path, before: int, timeout: float, expected: int | None
) -> tuple[Outcome | None, str | None]:
    """The agent's outcome line for the connection just played: the first complete line after
    the ``before`` there were, once it is there; with the reason it cannot be used, if it
    cannot (not an outcome line; its ``connection`` not ``expected``, the one after the last
    case's); (None, None) when none came within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            lines = path.read_bytes().split(b"\n")[:-1]  # the complete lines
        except FileNotFoundError:
            lines = []
        if len(lines) > before:
            try:  # read strictly: the agent under test wrote it (no NaN, no deep nesting)
                outcome = Outcome.from_json(parse_document(lines[before], "json"))
            except (DocumentError, ValueError, KeyError, TypeError):
                return None, f"outcome line {before + 1} is not an outcome line"
            if expected is not None and outcome.connection != expected:
                return None, (
                    f"outcome line {before + 1} is for connection {outcome.connection}, "
                    f"expected {expected}"
                )
            return outcome, None
        if loop.time() >= deadline:
            return None, None
        await asyncio.sleep(0.02)


def failed(results: Iterable[Result], *, strict: bool) -> list[Result]:
    """The results that fail the run: FAILED, and NON-STRICT too under ``strict``."""
    bad = {Verdict.FAILED, Verdict.NON_STRICT} if strict else {Verdict.FAILED}
    return [r for r in results if r.verdict in bad]


def case_by_id(case_id: str) -> Case:
    """The case ``case_id`` of the suite."""
    for case in all_cases():
        if case.id == case_id:
            return case
    raise InputError(f"no conformance case {case_id!r}")
