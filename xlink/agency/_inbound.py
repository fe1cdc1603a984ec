"""The receiving half of one release transfer: each labelled release of the partner's opened
with the OPRF outputs of tokens we hold, stored against one of our decided matches, and every
refusal audited with its reason code; a refusal no honest partner causes ends the transfer, or
the query session (:func:`ending_on_dishonesty`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, ParamSpec

from xlink.agency._matches import Inbound
from xlink.audit import AuditEvent
from xlink.decide import Decision
from xlink.errors import BadRelease, DecryptionError, PolicyDenied, ReleaseRejected, XlinkError
from xlink.identifiers import REASON_CODE
from xlink.protocol.limits import HANDLE_SIZE
from xlink.release.label import (
    LabelError,
    LabelNotMatched,
    OutputsOf,
    labelled_handles,
    open_labelled,
)
from xlink.release.transfer import Answer
from xlink.store.reasons import (
    CLOCK_REFUSALS,
    DENY_CREATED_IN_FUTURE,
    DENY_EXPIRED,
    DENY_LABEL_FAILED,
    DENY_MATCH_ALREADY_RECEIVED,
    DENY_NOT_DECIDED,
)
from xlink.store.store import DecidedMatches

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["Receiver", "ending_on_dishonesty"]

_P = ParamSpec("_P")


def ending_on_dishonesty(
    store_one: Callable[_P, Answer], *, clock_goes_on: bool = True
) -> Callable[_P, Answer]:
    """``store_one`` for a release transfer (xlink-release-v1 §10) or a query's answer
    (xlink-query-v1 §7.4): a release it refuses for a reason no honest partner causes (every
    reason but :data:`~xlink.store.reasons.CLOCK_REFUSALS`: both sides decided the same pairs
    under the same MOU and session, or the holder was asked for exactly these, and an honest
    side builds one release per pair, now) raises :class:`~xlink.errors.BadRelease` once
    ``store_one`` has audited it, which ends the transfer or the session: no answer, nothing
    more of ours sent. A refusal for the partner's clock is answered, and it goes on; with
    ``clock_goes_on`` false (a reciprocal transfer, xlink-release-v1 §10.5, where a partner
    could otherwise date its releases wrong and still be answered) it ends it too."""

    @functools.wraps(store_one)  # ``__wrapped__``: the receiver's own
    def store_or_end(*args: _P.args, **kwargs: _P.kwargs) -> Answer:
        answer = store_one(*args, **kwargs)
        if not answer.ok:
            reason = answer.body.decode("ascii", "replace")
            if not clock_goes_on or reason not in CLOCK_REFUSALS:
                raise BadRelease(reason)
        return answer

    return store_or_end


class Receiver:
    """The receiving half of one transfer: opens each labelled release with the OPRF outputs
    of tokens we hold (spec §10.2) and stores it against the decided match it names.
    ``reciprocal``: a transfer under ``release.reciprocal`` (§10.5), the only one whose
    releases credit the partner, each stored release once (a query's answer or a plain
    transfer's credit nothing)."""

    def __init__(
        self,
        agency: Agency,
        session_id: bytes,
        decision: Decision,
        outputs_of: OutputsOf,
        *,
        reciprocal: bool = False,
    ) -> None:
        self._agency = agency
        self._reciprocal = reciprocal
        self._session_id = session_id
        self._outputs_of = outputs_of
        self._expected = DecidedMatches(m.handles for m in decision.matches)
        # Our decided matches by handle set, in order: two of our records decided with the same
        # peer record on the same tokens share a handle set, and take its releases in turn.
        self._waiting: dict[frozenset[bytes], list[int]] = {}
        for i, m in enumerate(decision.matches):
            self._waiting.setdefault(frozenset(m.handles), []).append(i)
        self._matches = decision.matches
        self.inbound: dict[int, Inbound] = {}  # by index of the decided match
        self.accepted: list[Inbound] = []
        self.refused = 0

    def _refuse(self, named: tuple[bytes, ...], reason: str) -> Answer:
        self.refused += 1
        # The first handle the frame names stands for the release (its id is inside).
        first = named[0] if named and len(named[0]) == HANDLE_SIZE else bytes(HANDLE_SIZE)
        fields = {"session": self._session_id, "handle": first, "reason": reason}
        agency = self._agency
        agency.audit.append(
            AuditEvent.RECEIVE_DENIED, {**fields, "peer": agency.peer_id}, now=agency.clock()
        )
        return Answer(False, reason.encode("ascii"))

    def store_one(self, frame: bytes, for_match: int | None = None) -> Answer:
        """Open, check and store one release frame; the :class:`~xlink.release.transfer.Answer`
        (accepted, receipt or refusal code, and whether it credits the partner: each stored
        release once, xlink-release-v1 §10.5), the refusal
        audited (``RECEIVE_DENIED``).
        ``for_match``: the index of the decided match the frame answers (a query's answer
        slot): a frame whose label names another of our decided pairs is refused (not
        decided for that slot), so that an answer cannot file one traveller's release under
        another."""
        named = labelled_handles(frame)
        try:
            label, data = open_labelled(
                frame, session_id=self._session_id, outputs_of=self._outputs_of
            )
        except LabelNotMatched:  # names handles that are not one of our decided pairs
            return self._refuse(named, DENY_NOT_DECIDED)
        except (LabelError, DecryptionError):
            return self._refuse(named, DENY_LABEL_FAILED)
        waiting = self._waiting.get(frozenset(label))
        index = waiting[0] if waiting else None
        if for_match is not None and (waiting is None or for_match not in waiting):
            return self._refuse(label, DENY_NOT_DECIDED)
        if for_match is not None:
            index = for_match
        own = self._matches[index].local_record_id if index is not None else None
        try:
            accepted = self._agency.store.accept(
                data,
                expected_session_id=self._session_id,
                now=self._agency.clock(),
                expected_matches=self._expected,
                label_handles=label,
                own_record_id=own,
                credit=self._reciprocal,
            )
        except XlinkError as exc:
            reason = _refusal_reason(exc)
            if isinstance(exc, PolicyDenied) and reason in _AUDITED_BY_THE_STORE:
                self.refused += 1
                return Answer(False, reason.encode("ascii"))
            # Every other refusal of §7 (wrong session, MOU, originator, signature, fields,
            # caveats, a replayed release id...) is audited here, with its code.
            return self._refuse(label, reason)
        status = "received" if accepted.stored else "held-before"
        # a copy of a release we hold is named by the one stored, which ``store read`` opens
        got = Inbound(status, accepted.held_id, accepted.category.value)
        if waiting and index is not None:
            waiting.remove(index)
            self.inbound[index] = got
        self.accepted.append(got)
        return Answer(True, accepted.receipt, accepted.credited)


# The refusals ReleaseStore.accept audits itself (xlink-release-v1 §7 steps 11 and 12).
_AUDITED_BY_THE_STORE: Final = frozenset(
    {
        DENY_NOT_DECIDED,
        DENY_LABEL_FAILED,
        DENY_MATCH_ALREADY_RECEIVED,
        DENY_CREATED_IN_FUTURE,
        DENY_EXPIRED,
    }
)


def _refusal_reason(exc: XlinkError) -> str:
    """The reason code of a refused release, for the REFUSED answer and the audit log."""
    if isinstance(exc, PolicyDenied) and exc.reasons:
        code = exc.reasons[0]
    elif isinstance(exc, ReleaseRejected):
        code = exc.reason
    elif isinstance(exc, DecryptionError):
        code = "decryption-failed"
    else:
        code = "rejected"
    return code if REASON_CODE.fullmatch(code) else "rejected"
