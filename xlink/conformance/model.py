"""What a conformance case is, what the runner sees while playing it, and the verdict
(protocols/conformance.md §4-5)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from xlink.error_codes import AbortCode

if TYPE_CHECKING:
    from xlink.conformance.script import Play

__all__ = [
    "Case",
    "Expect",
    "Observation",
    "Outcome",
    "Result",
    "Verdict",
    "judge",
]


class Verdict(Enum):
    """A case's verdict, as Autobahn|Testsuite names them."""

    OK = "OK"
    NON_STRICT = "NON-STRICT"
    """Conforms to every MUST, not to a SHOULD (a failure under ``--strict``)."""
    FAILED = "FAILED"
    INFORMATIONAL = "INFORMATIONAL"
    """Measured and reported, never a failure (e.g. how long an abort took)."""
    UNIMPLEMENTED = "UNIMPLEMENTED"
    """The case does not apply to the role the implementation was run in."""


@dataclass(frozen=True)
class Expect:
    """What the implementation under test must do in a case.

    ``abort``: the codes it may abort with (any one; empty: it must complete the exchange).
    ``on_wire``: the aborting message is a PSI message, so the spec requires an Abort carrying
    the code (xlink-psi-v2 §11.2); release transfer v3 has no Abort frame, so its aborts are
    judged from the outcome line alone. ``either``, ``may_release``, ``may_store``: see below.
    ``check``: a further condition on what the runner saw, returning the reason it failed or
    None. ``level``: ``MUST`` or ``SHOULD`` (a SHOULD case
    that fails is NON-STRICT, and runs only with ``--strict``)."""

    abort: tuple[AbortCode, ...] = ()
    either: bool = False
    """Completing and aborting (with any code) both conform; ``check`` decides."""
    on_wire: bool = True
    may_release: bool = False
    """The fault comes in the release phase, where both sides send at once: the agent's own
    releases sent before it are allowed (xlink-release-v1 §10)."""
    may_store: bool = False
    """The fault comes after some of the runner's releases: storing those is allowed (they
    stay stored, xlink-release-v1 §10)."""
    check: Callable[[Observation, Outcome | None], str | None] | None = None
    level: str = "MUST"


@dataclass(frozen=True)
class Case:
    """One conformance case.

    ``id``: dotted, stable (``psi.hello.wrong_suite``); ``tc_id``: its number in the suite.
    ``section``: the spec and section it checks; ``requirement``: the requirement's text.
    ``roles``: the agent roles (``initiator``, ``responder``) it applies to. ``vector``: the
    invalid vector it plays live (``psi-v2/invalid.json#wrong_suite``), if any. ``play``: what
    the runner does; ``expect``: what the agent must do."""

    id: str
    tc_id: int
    section: str
    requirement: str
    roles: frozenset[str]
    play: Play
    expect: Expect
    flags: tuple[str, ...] = ()
    vector: str | None = None


@dataclass
class Observation:
    """What the runner saw while playing a case: the error its own side ended with (the
    agent's Abort code when it sent one), the frames the agent sent (PSI messages and
    transfer frames), the runner's exchange outcome, and the time taken."""

    error: BaseException | None = None
    peer_abort: AbortCode | None = None
    received: list[bytes] = field(default_factory=list)
    outcome: Any = None
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)
    idle_timeout: float = 0.0
    """The agent's idle timeout, as the runner was told it."""
    unplayed: int = 0
    """The case's changes that were never made (the conversation ended before their frame)."""
    wire_releases: int = 0
    """Releases the agent sent, as the runner received them: RELEASE frames (release transfer
    v3) and the labelled releases of a holder's RELEASES messages (xlink-query-v1 §6.12)."""


#: The values of an outcome line's ``outcome`` and ``role`` (protocols/conformance.md §3.3): the
#: roles an agent is started in.
OUTCOMES = frozenset({"completed", "aborted", "peer-aborted"})
AGENT_ROLES = ("initiator", "responder", "holder")


@dataclass(frozen=True)
class Outcome:
    """The agent's outcome line for the case's connection (protocols/conformance.md §3.3)."""

    outcome: str
    code: str | None
    released: int
    stored: int
    refused: int

    connection: int = 0
    role: str = ""

    @classmethod
    def from_json(cls, data: object) -> Outcome:
        """The outcome line ``data``. Every field is required, and the text ones are one of
        their values (protocols/conformance.md §3.3: the implementation under test writes
        them, and they reach the runner's report), and the counts JSON integers, 0 or more:
        ``KeyError``, ``ValueError`` or ``TypeError`` for a line that is not one."""
        if not isinstance(data, dict):
            raise TypeError("an outcome line is a JSON object")
        outcome, code, role = data["outcome"], data["code"], data["role"]
        if outcome not in OUTCOMES or role not in AGENT_ROLES:
            raise ValueError("not an outcome or a role")
        if code is not None and code not in AbortCode.__members__:
            raise ValueError("not an abort code's name")
        counts = [data[name] for name in ("released", "stored", "refused", "connection")]
        if not all(type(n) is int and 0 <= n < 2**63 for n in counts):
            raise ValueError("a count that is not a JSON integer, 0 or more")
        released, stored, refused, connection = counts
        return cls(outcome, code, released, stored, refused, connection, role)


@dataclass(frozen=True)
class Result:
    """A played case: its verdict, why, and what was seen."""

    case: Case
    role: str
    verdict: Verdict
    reason: str
    observation: Observation
    outcome: Outcome | None


def judge(case: Case, seen: Observation, outcome: Outcome | None) -> tuple[Verdict, str]:
    """The verdict of ``case`` from what the runner saw and the agent's outcome line."""
    expect = case.expect
    failed = Verdict.NON_STRICT if expect.level == "SHOULD" else Verdict.FAILED
    unplayable = [n for n in seen.notes if n.startswith("the runner could not play")]
    if unplayable:
        return Verdict.FAILED, unplayable[0]
    if seen.unplayed:
        return Verdict.FAILED, (
            "the conversation ended before the case's change was made: "
            f"{outcome.outcome if outcome else 'no outcome'} with "
            f"{outcome.code if outcome else None}"
        )
    if outcome is not None and seen.wire_releases > outcome.released:
        return Verdict.FAILED, (
            f"sent {seen.wire_releases} releases but reported {outcome.released}: the outcome "
            "line does not tell what happened"
        )
    if outcome is None:
        bad = [n for n in seen.notes if n.startswith("outcome line")]
        return failed, bad[
            0
        ] if bad else "the implementation reported no outcome for the connection"
    names = {c.name for c in expect.abort}
    if expect.either:
        if outcome.outcome != "completed" and (outcome.released or outcome.stored):
            return failed, f"aborted but released {outcome.released}, stored {outcome.stored}"
    elif expect.abort:
        if outcome.outcome == "peer-aborted":
            return failed, f"expected an abort with {_either(names)}; the runner aborted first"
        if outcome.outcome != "aborted":
            return failed, f"expected an abort with {_either(names)}; it completed the exchange"
        if outcome.code not in names:
            return failed, f"aborted with {outcome.code}, expected {_either(names)}"
        if (outcome.released and not expect.may_release) or (
            outcome.stored and not expect.may_store
        ):
            return failed, (f"aborted but released {outcome.released} and stored {outcome.stored}")
        if expect.on_wire:
            if seen.peer_abort is None:
                return failed, f"reported {outcome.code} but sent no Abort carrying it"
            if seen.peer_abort.name != outcome.code:
                return failed, f"sent Abort {seen.peer_abort.name} but reported {outcome.code}"
    elif outcome.outcome != "completed":
        return failed, f"expected the exchange to complete; it aborted with {outcome.code}"
    if expect.check is not None:
        reason = expect.check(seen, outcome)
        if reason is not None:
            return failed, reason
    if outcome.outcome != "completed":
        return Verdict.OK, f"{outcome.outcome} with {outcome.code}"
    return Verdict.OK, "completed"


def _either(names: set[str]) -> str:
    return " or ".join(sorted(names))


PlayFn = Callable[..., Awaitable[None]]
