"""The conformance suite: every case, numbered, with its section, requirement, roles and
expectation (protocols/conformance.md §4). Sanity cases come first and last."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from typing import Final

from xlink.agency import QueryOutcome
from xlink.conformance.cases_psi import PSI_CASES, ROLE_CASES
from xlink.conformance.cases_query import QUERY_CASES
from xlink.conformance.cases_session import SESSION_PLAYS
from xlink.conformance.cases_transfer import TRANSFER_CASES
from xlink.conformance.model import Case, Expect, Observation, Outcome
from xlink.conformance.script import ByRole, QueryRewrite, Rewrite, abort_received, kind_of
from xlink.error_codes import AbortCode as A
from xlink.query.messages import QueryType
from xlink.release.transfer import FrameType

__all__ = ["ROLES", "SANITY_FIRST", "SANITY_LAST", "all_cases", "select"]

ROLES: Final = frozenset({"initiator", "responder"})
"""The roles of an exchange (xlink-psi-v2, then release transfer v3)."""
HOLDER: Final = frozenset({"holder"})
"""The role of a query holder (xlink-query-v1)."""
PSI: Final = "xlink-psi-v2"
RELEASE: Final = "xlink-release-v1"
QUERY: Final = "xlink-query-v1"


def _sanity(seen: Observation, outcome: Outcome | None) -> str | None:
    out = seen.outcome
    if out is None or outcome is None:
        return "the runner's exchange did not complete"
    if isinstance(out, QueryOutcome):
        if out.received == 0 or outcome.released != out.received:
            return (
                f"an honest query session received {out.received} releases of the "
                f"{outcome.released} the holder sent: expected the matched travellers' releases"
            )
        return None
    if out.decided == 0 or out.released_total == 0 or out.received_total == 0:
        return (
            f"an honest exchange decided {out.decided}, released {out.released_total} and "
            f"received {out.received_total}: expected releases both ways"
        )
    if outcome.stored != out.released_total:
        return f"the agent stored {outcome.stored} of the runner's {out.released_total} releases"
    return None


def _released_nothing(seen: Observation, outcome: Outcome | None) -> str | None:
    if outcome is None:
        return None
    if outcome.released or outcome.stored:
        return (
            f"released {outcome.released} and stored {outcome.stored} to a reflecting peer "
            "(it holds none of the agent's people)"
        )
    return None


def _stopped(seen: Observation, outcome: Outcome | None) -> str | None:
    if outcome is not None and outcome.outcome == "completed":
        return "completed an exchange whose answers were permuted"
    return _released_nothing(seen, outcome)


def _peer_aborted_with(code: str) -> Callable[[Observation, Outcome | None], str | None]:
    def check(seen: Observation, outcome: Outcome | None) -> str | None:
        if outcome is None or (outcome.outcome, outcome.code) != ("peer-aborted", code):
            got = None if outcome is None else (outcome.outcome, outcome.code)
            return f"expected the outcome peer-aborted with {code}, got {got}"
        if abort_received(seen.received) is not None:
            return "sent an ABORT in answer to the runner's ABORT"
        return None

    return check


_ANSWERS: Final = (FrameType.RECEIPT, FrameType.REFUSED)


def _answer(frame: bytes) -> bool:
    kind = kind_of(frame)  # an IntEnum: a PSI message of the same number is not an answer
    return any(kind is answer for answer in _ANSWERS)


def _ended_at_the_release(seen: Observation, outcome: Outcome | None) -> str | None:
    if outcome is not None and outcome.refused != 1:
        return f"refused {outcome.refused} releases of the runner's, not the one of another session"
    answered = [f for f in seen.received if _answer(f)]
    if answered:
        return "answered a release of the runner's after the one of another session"
    return None


def _within(idle_timeouts: float) -> Callable[[Observation, Outcome | None], str | None]:
    """The abort came within ``idle_timeouts`` idle timeouts (and a second) of the start."""

    def check(seen: Observation, outcome: Outcome | None) -> str | None:
        limit = seen.idle_timeout * idle_timeouts + 1.0
        if seen.elapsed > limit:
            return f"the abort came after {seen.elapsed:.1f} s (limit {limit:.1f} s)"
        return None

    return check


def _no_answer_to_abort(seen: Observation, outcome: Outcome | None) -> str | None:

    if outcome is None or (outcome.outcome, outcome.code) != ("peer-aborted", "TIMEOUT"):
        got = None if outcome is None else (outcome.outcome, outcome.code)
        return f"expected the outcome peer-aborted with the runner's TIMEOUT, got {got}"
    if abort_received(seen.received) is not None:  # what it sent before ours arrived is fine
        return "sent an Abort in answer to the runner's Abort"
    return None


_ANY_PROTOCOL: Final = frozenset({"timing.silence", "timing.prompt_abort", "size.oversize_frame"})
"""Session cases that send no protocol message: played against a query holder too (its idle
timeout and its frame limit are the same rules, xlink-query-v1 §6)."""


def _session_cases() -> list[tuple[str, str, str, Expect, tuple[str, ...]]]:
    reflection = Expect(either=True, check=_released_nothing)
    return [
        ("timing.silence", f"{PSI} §5.5",
         "A peer that sends nothing MUST NOT hold the session open: abort with TIMEOUT.",
         Expect(abort=(A.TIMEOUT,), on_wire=False), ("timing",)),
        ("timing.prompt_abort", f"{PSI} §5.5",
         "A session with a silent peer SHOULD be aborted within twice the idle timeout.",
         Expect(abort=(A.TIMEOUT,), on_wire=False, check=_within(2), level="SHOULD"),
         ("timing",)),
        ("timing.slow_drip", f"{PSI} §5.5",
         "A Hello sent one byte at a time MUST NOT keep the session alive past the idle "
         "timeout: abort with TIMEOUT within three idle timeouts (an implementation that "
         "restarts its timer on every byte is still waiting then).",
         Expect(abort=(A.TIMEOUT,), on_wire=False, check=_within(3)),
         ("timing", "slowloris")),
        ("timing.early_close", f"{PSI} §5.5",
         "A peer closing after its Hello ends the session (CONNECTION_LOST), nothing released.",
         Expect(abort=(A.CONNECTION_LOST,), on_wire=False), ("timing",)),
        ("size.oversize_frame", f"{PSI} §6.1",
         "A frame header announcing more than MAX_MESSAGE_SIZE MUST be rejected as soon as it "
         "is read with FRAME_TOO_LARGE, and answered with an Abort.",
         Expect(abort=(A.FRAME_TOO_LARGE,)), ("limits",)),
        ("ordering.message_after_abort", f"{PSI} §6.8",
         "An Abort ends the session: no Abort is sent in answer, nothing after it is read; the "
         "outcome is the peer's abort, with its code.",
         Expect(either=True, check=_no_answer_to_abort), ("ordering",)),
        ("dishonest.reflection", f"{PSI} §4.5",
         "A peer sending the agent's own blinded elements and answers back as its own MUST "
         "be released nothing (the agent may complete with no match, or abort).", reflection,
         ("dishonest", "reflection")),
        ("dishonest.rerandomised_reflection", f"{PSI} §4.5",
         "The same, each element multiplied by a scalar the peer knows: nothing matches.",
         reflection, ("dishonest", "reflection")),
        ("dishonest.permuted_answers", f"{PSI} §6.10",
         "Honest re-blinded answers in the wrong positions MUST NOT lead to a release: the "
         "claims and the confirmation round stop the exchange (whichever side sees it first).",
         Expect(either=True, check=_stopped), ("dishonest",)),
        ("dishonest.copied_reveal", f"{PSI} §6.11",
         "A copy of the agent's own Reveal sent back does not open the peer's Commit: "
         "BAD_COMMITMENT (or BAD_REVEAL).",
         Expect(abort=(A.BAD_COMMITMENT, A.BAD_REVEAL)), ("dishonest", "reflection")),
        ("dishonest.unsolicited_release", f"{RELEASE} §10",
         "A release of another session (not decided in this one) MUST end the transfer with "
         "BAD_RELEASE and be stored nowhere (the agent's own releases sent before it may "
         "stand).", Expect(abort=(A.BAD_RELEASE,), on_wire=False, may_release=True,
         check=_ended_at_the_release),
         ("dishonest", "replay")),
    ]  # fmt: skip


def all_cases() -> list[Case]:
    """The suite in the order it runs, numbered from 1: the sanity case, the PSI cases, the
    transfer cases, the query holder cases, the session cases, the sanity case again."""
    cases: list[Case] = []

    def add(
        id_: str,
        section: str,
        requirement: str,
        roles: Iterable[str],
        play: object,
        expect: Expect,
        flags: tuple[str, ...],
        vector: str | None = None,
    ) -> None:
        cases.append(
            Case(id_, len(cases) + 1, section, requirement, frozenset(roles), play,  # type: ignore[arg-type]
                 expect, flags, vector)
        )  # fmt: skip

    sanity = Expect(check=_sanity)
    honest = (
        "An honest exchange completes: matches decided, releases sent and stored both ways (a "
        "query holder: the matched travellers' releases sent and receipted)."
    )
    both = ROLES | HOLDER
    add(SANITY_FIRST, f"{PSI} §5, {RELEASE} §10, {QUERY} §7", honest, both,
        ByRole({"initiator": Rewrite(record="sanity"), "responder": Rewrite(record="sanity"),
                "holder": QueryRewrite()}),
        sanity, ("sanity",))  # fmt: skip
    for c in (*PSI_CASES, *ROLE_CASES):
        codes = " or ".join(code.name for code in c.codes)
        add(f"psi.{c.name}", f"{PSI} §{c.section}",
            f"MUST abort with {codes} and send an Abort carrying it: {c.description}.",
            c.roles, Rewrite((c.rule,)), Expect(abort=c.codes), ("vector", *c.flags),
            f"psi-v2/invalid.json#{c.name}")  # fmt: skip
    for t in TRANSFER_CASES:
        add(f"transfer.{t.name}", f"{RELEASE} §10",
            f"MUST abort with {t.code.name}, send nothing more and close: {t.description}.",
            ROLES, Rewrite((t.rule,), disjoint=t.disjoint),
            Expect(abort=(t.code,), on_wire=False, may_release=t.releasing,
                   may_store=t.stored_before), ("vector", "transfer"),
            f"release-transfer-v3/invalid.json#{t.name}")  # fmt: skip
    for q in QUERY_CASES:
        if q.peer_abort:
            requirement = f"MUST end the session and send nothing back: {q.description}."
            expect = Expect(either=True, check=_peer_aborted_with(q.code.name))
        else:
            requirement = (
                f"MUST abort with {q.code.name} and send an ABORT carrying it: {q.description}."
            )
            expect = Expect(abort=(q.code,), may_release=q.rule.kind is QueryType.RECEIPTS)
        add(f"query.{q.name}", f"{QUERY} §{q.section}", requirement, HOLDER,
            QueryRewrite((q.rule,)), expect, ("vector", "query", *q.flags),
            f"query-v1/invalid.json#{q.name}")  # fmt: skip
    for id_, section, requirement, expect, flags in _session_cases():
        play = SESSION_PLAYS[id_.split(".", 1)[1]]
        roles = ROLES | HOLDER if id_ in _ANY_PROTOCOL else ROLES
        add(id_, section, requirement, roles, play, expect, flags)
    add(
        SANITY_LAST,
        f"{PSI} §5, {RELEASE} §10, {QUERY} §7",
        honest + " Still, after everything before.",
        both,
        ByRole({"initiator": Rewrite(), "responder": Rewrite(), "holder": QueryRewrite()}),
        sanity,
        ("sanity",),
    )
    return cases


SANITY_FIRST: Final = "sanity.first"
SANITY_LAST: Final = "sanity.last"


def select(
    cases: list[Case], role: str, patterns: Iterable[str] = (), *, strict: bool = False
) -> list[Case]:
    """The cases for an agent in ``role`` whose id matches one of the glob ``patterns`` (all
    when none), the SHOULD cases only when ``strict``, with the sanity cases always first and
    last."""
    chosen = [c for c in cases if role in c.roles and (strict or c.expect.level == "MUST")]
    pats = list(patterns)
    if pats:
        chosen = [
            c
            for c in chosen
            if c.id in (SANITY_FIRST, SANITY_LAST)
            or any(fnmatch.fnmatchcase(c.id, p) for p in pats)
        ]
    return chosen
