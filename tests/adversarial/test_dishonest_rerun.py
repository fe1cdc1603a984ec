"""A dishonest partner against safe re-runs (xlink-release-v1 §10.4, §10, §10.2; issue 12).

US-DHS (`serve`, honest: the side under test) and CA-RCMP (`match`, the partner) run real
exchanges over mutual TLS on 127.0.0.1, several times in the same workdirs. The partner is the
library with one step falsified, for its own side only: it replays release frames of an earlier
session, wraps an earlier session's releases in this session's labels, sends two releases for one
decided match, withholds or forges receipts, re-sends content we hold (for the same or another of
our records) and hangs up once it has our releases.

What must hold on our side: nothing stored twice and nothing lost (store ids, own records,
content digests), our outbound ledger delivered (``SENT``) only on a receipt that verifies and
otherwise offered again (once per decided match and session), a release we refuse audited
(``RECEIVE_DENIED`` with its reason) and ending the transfer (``BAD_RELEASE``, no honest
partner sends one), and ``RELEASE_SENT`` / ``RECEIPT_RECEIVED`` / ``RUN_ENDED`` saying what
happened.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from _agencies import CA, US, Agencies
from _two_agencies import both_completed

import xlink.agency._exchange as exchange_step
import xlink.agency._inbound as inbound
import xlink.agency._releasing as releasing
from xlink.agency import AgencyOutcome
from xlink.audit import AuditEvent
from xlink.decide import Decision
from xlink.errors import AbortCode, BadRelease, XlinkError
from xlink.release import SealedRelease, release_decided
from xlink.release.recipe import Fate, ReleaseBatch
from xlink.release.transfer import Answer as StoreAnswer
from xlink.transport.release_transfer import TransferGate, TransferResult, transfer_releases

# xlink-release-v1 §10, written out here rather than imported.
MAGIC = b"\xf0XR\x03"
RECEIPT, REFUSED, RECEIPTS_END = 4, 5, 6
HANDLE = 16

REAL_STORE_ONE = inbound.Receiver.store_one

Answer = tuple[bool, bytes]
Encode = Callable[[SealedRelease], bytes]


# -- the partner ---------------------------------------------------------------------------------


@dataclasses.dataclass
class PartnerRun:
    """What the partner did in one exchange."""

    batch: ReleaseBatch | None = None
    record_of: dict[bytes, str] = dataclasses.field(default_factory=dict)  # release id -> own id
    sealed: list[SealedRelease] = dataclasses.field(default_factory=list)  # its library's
    honest_frames: list[bytes] = dataclasses.field(default_factory=list)  # as labelled honestly
    frames: list[bytes] = dataclasses.field(default_factory=list)  # RELEASE bodies it sent
    answers_from_us: list[Answer] = dataclasses.field(default_factory=list)
    issued: list[Answer] = dataclasses.field(default_factory=list)  # its store's real answers
    answered: list[Answer] = dataclasses.field(default_factory=list)  # what it answered us


class Partner:
    """CA-RCMP built on the library, with the steps a test sets falsified for CA-RCMP only:
    ``forget_ledger`` (release every decided match again, as with no outbound ledger),
    ``remap`` (the decision it builds releases from), ``rewrite`` (the RELEASE bodies it sends),
    ``answer`` (its answer to each of our releases, after its store really took it) and
    ``drop`` (release-transfer frame types it never sends). Records every run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.runs: list[PartnerRun] = []
        self.forget_ledger = False
        self.remap: Callable[[Decision], Decision] | None = None
        self.rewrite: Callable[[PartnerRun, Sequence[SealedRelease], Encode], list[bytes]] | None
        self.rewrite = None
        self.answer: Callable[[PartnerRun, int, Answer], Answer] | None = None
        self.drop: frozenset[int] = frozenset()
        monkeypatch.setattr(releasing, "release_decided", self._release_decided)
        monkeypatch.setattr(exchange_step, "transfer_releases", self._transfer_releases)
        monkeypatch.setattr(inbound.Receiver, "store_one", self._store_one())

    def honest(self) -> None:
        self.forget_ledger = False
        self.remap = self.rewrite = self.answer = None
        self.drop = frozenset()

    def _release_decided(self, decision: Decision, *args: Any, **kwargs: Any) -> ReleaseBatch:
        if kwargs["originator"] != CA:
            return release_decided(decision, *args, **kwargs)
        run = PartnerRun()
        self.runs.append(run)
        if self.forget_ledger:
            kwargs = {**kwargs, "queue": None}
        if self.remap is not None:
            decision = self.remap(decision)
        batch = release_decided(decision, *args, **kwargs)
        run.batch = batch
        run.record_of = {
            f.release_id: f.record_id
            for f in batch.fates
            if f.fate is Fate.SENT and f.release_id is not None
        }
        return batch

    async def _transfer_releases(
        self,
        gate: TransferGate,
        ours: Sequence[SealedRelease],
        store_one: Callable[[bytes], Answer],
        idle_timeout: float,
        encode: Encode | None = None,
        on_answer: Callable[[int, bool, bytes], object] | None = None,
        **kwargs: Any,
    ) -> TransferResult:
        receiver = getattr(getattr(store_one, "__wrapped__", store_one), "__self__", None)
        if receiver is None or receiver._agency.agency_id != CA:
            return await transfer_releases(
                gate, ours, store_one, idle_timeout, encode, on_answer=on_answer, **kwargs
            )
        # The partner's own bookkeeping settles the answers at the end (below, one per
        # release its library built), not as they arrive: its frames are not its releases.
        run = self.runs[-1]
        run.sealed = list(ours)
        run.honest_frames = [s.data if encode is None else encode(s) for s in ours]
        frames = run.honest_frames
        if self.rewrite is not None:
            frames = self.rewrite(run, ours, encode or (lambda s: s.data))
        run.frames = list(frames)
        if self.drop:
            send = gate.send

            async def dropping(message: bytes) -> None:
                if message.startswith(MAGIC) and message[4] in self.drop:
                    return
                await send(message)

            self.monkeypatch.setattr(gate, "send", dropping)
        # Its library answers what its store refused (or what ``answer`` makes up) and goes on.
        answering = getattr(store_one, "__wrapped__", store_one)
        result = await transfer_releases(
            gate, [_carrier(f) for f in frames], answering, idle_timeout
        )
        run.answers_from_us = list(result.answers)
        # Its own bookkeeping gets one answer per release its library built.
        answers = (list(result.answers) + [(False, b"not-sent")] * len(ours))[: len(ours)]
        return TransferResult(result.peer_releases, answers)

    def _store_one(self) -> Callable[[Any, bytes], StoreAnswer]:
        def store_one(receiver: Any, frame: bytes) -> StoreAnswer:
            real = REAL_STORE_ONE(receiver, frame)
            if receiver._agency.agency_id != CA:
                return real
            got = (real.ok, real.body)
            run = self.runs[-1]
            run.issued.append(got)
            answer = got if self.answer is None else self.answer(run, len(run.issued) - 1, got)
            run.answered.append(answer)
            return StoreAnswer(*answer)

        return store_one


def _carrier(body: bytes) -> SealedRelease:
    """A RELEASE body as the transfer takes it (it sends ``data`` and looks at nothing else)."""
    return SealedRelease(bytes(16), bytes(16), bytes(32), CA, US, "watchlist", body)


# -- reading our side ----------------------------------------------------------------------------


def _entries(
    agencies: Agencies, kind: AuditEvent, session: str | None = None
) -> list[dict[str, Any]]:
    return [
        f
        for k, f in agencies.audit(US)
        if k is kind and (session is None or f.get("session") == session)
    ]


def _aborted(out: dict[str, Any], agencies: Agencies, reason: str) -> str:
    """Check that a release of the partner's refused for ``reason`` ended our run with
    ``BAD_RELEASE``, audited once as refused and once as the abort; the session's id."""
    error = out[US]
    assert isinstance(error, BadRelease), error
    assert (error.code, error.reason) == (AbortCode.BAD_RELEASE, reason)
    (aborted,) = _entries(agencies, AuditEvent.SESSION_ABORTED)
    assert (aborted["code"], aborted["side"], aborted["peer"]) == ("BAD_RELEASE", "LOCAL", CA)
    session = str(aborted["session"])
    (denied,) = _entries(agencies, AuditEvent.RECEIVE_DENIED, session)
    assert (denied["reason"], denied["peer"]) == (reason, CA)
    ended = _run_ends(agencies)[-1]
    assert (ended["outcome"], ended["code"], ended["session"]) == (
        "transfer-failed",
        "BAD_RELEASE",
        session,
    )
    return session


def _run_ends(agencies: Agencies) -> list[dict[str, Any]]:
    return _entries(agencies, AuditEvent.RUN_ENDED)


def _rows(agencies: Agencies) -> list[tuple[bytes, str, bytes]]:
    """(release id, own record id, content digest) of every release in our store."""
    return agencies.rows(
        US, "store.db", "SELECT release_id, own_record_id, content FROM releases ORDER BY 1"
    )


def _inbound(outcome: AgencyOutcome) -> Counter[str]:
    path = Path(outcome.matches_file).with_suffix(".jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return Counter(row["inbound"] for row in rows)


def _first(agencies: Agencies) -> tuple[AgencyOutcome, AgencyOutcome]:
    """A first, honest exchange; checks that it delivered ten releases each way."""
    us, ca = both_completed(agencies.run())
    assert us.decided == ca.decided == 10
    assert us.released_total == ca.released_total == 10
    assert us.receipts_verified == ca.receipts_verified == 10
    assert agencies.stored(US) == agencies.stored(CA) == 10
    return us, ca


# -- replays of an earlier session ---------------------------------------------------------------


def test_release_frames_replayed_from_an_earlier_session_end_the_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner records its labelled RELEASE frames of session 1 and sends them again, byte
    for byte, in session 2 (where its ledger has nothing left to send). Their labels name the
    handles of session 1, which no decided match of session 2 has: the first is refused
    (``not-decided``), audited, and ends the transfer; nothing is stored."""
    partner = Partner(monkeypatch)
    agencies = Agencies(tmp_path)
    _first(agencies)
    before, ledger = _rows(agencies), agencies.ledger(US)
    recorded = partner.runs[0].frames
    assert len(recorded) == 10

    partner.rewrite = lambda run, ours, encode: list(recorded)
    session = _aborted(agencies.run(), agencies, "not-decided")
    assert partner.runs[1].sealed == []  # its ledger: everything delivered
    assert _rows(agencies) == before and agencies.ledger(US) == ledger
    (denied,) = _entries(agencies, AuditEvent.RECEIVE_DENIED, session)
    assert denied["handle"] == recorded[0][1 : 1 + HANDLE].hex()
    assert not _entries(agencies, AuditEvent.RELEASE_RECEIVED, session)
    assert not _entries(agencies, AuditEvent.RECEIPT_SENT, session)
    assert not _entries(agencies, AuditEvent.RELEASE_SENT, session)  # we had nothing left
    first, _ = _run_ends(agencies)
    assert (first["outcome"], first["released"], first["received"]) == ("completed", 10, 10)


def _relabelled_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Agencies, str]:
    """Session 1 honest; in session 2 the partner builds a release for every decided match
    again and labels, for each, the sealed release it sent for the same record in session 1
    (signed by it, sealed to us, bound to session 1) with the labels of session 2, which it can
    compute: the label opens, the release inside is from another session (``wrong-session``),
    and the first ends the transfer. Returns the second session's id."""
    partner = Partner(monkeypatch)
    agencies = Agencies(tmp_path)
    _first(agencies)
    first = partner.runs[0]
    old = {first.record_of[s.release_id]: s for s in first.sealed}

    def relabel(run: PartnerRun, ours: Sequence[SealedRelease], encode: Encode) -> list[bytes]:
        return [
            encode(dataclasses.replace(s, data=old[run.record_of[s.release_id]].data)) for s in ours
        ]

    partner.forget_ledger = True
    partner.rewrite = relabel
    session = _aborted(agencies.run(), agencies, "wrong-session")
    assert len(partner.runs[1].frames) == 10
    return agencies, session


def test_a_release_of_an_earlier_session_in_this_sessions_labels_ends_the_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agencies, session = _relabelled_replay(tmp_path, monkeypatch)
    assert agencies.stored(US) == 10  # session 1's, once each
    assert not _entries(agencies, AuditEvent.RELEASE_RECEIVED, session)
    assert not _entries(agencies, AuditEvent.RECEIPT_SENT, session)


# -- two releases for one decided match ----------------------------------------------------------


def _same_frame(run: PartnerRun, ours: Sequence[SealedRelease], encode: Encode) -> list[bytes]:
    frames = [encode(s) for s in ours]
    return [*frames[:-1], frames[0]]  # the first frame again, byte for byte, instead of the last


def _twice(other_record: bool) -> Callable[[Decision], Decision]:
    def remap(decision: Decision) -> Decision:
        first, second, *rest = decision.matches
        again = first
        if other_record:  # another record's release, under the first match's handles
            again = dataclasses.replace(first, local_record_id=second.local_record_id)
        # The last decided match gives up its place: at most one release per decided match.
        return dataclasses.replace(decision, matches=(first, again, second, *rest[:-1]))

    return remap


@pytest.mark.parametrize("variant", ["same-frame", "same-record", "other-record"])
def test_a_second_release_for_one_decided_match_ends_the_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    """The partner sends two releases for its first decided match (the same frame twice, a
    second release of the same record, or another record's release under the same handles)
    and none for its last. The second is refused ``match-already-received``, audited, and ends
    the transfer; nothing is stored twice; the next (honest) exchange delivers the ones
    missing, and in the end each of our ten decided records holds exactly one release."""
    partner = Partner(monkeypatch)
    if variant == "same-frame":
        partner.rewrite = _same_frame
    else:
        partner.remap = _twice(other_record=variant == "other-record")
    agencies = Agencies(tmp_path)
    session = _aborted(agencies.run(), agencies, "match-already-received")
    run = partner.runs[0]
    assert len(run.frames) == 10
    duplicate = 9 if variant == "same-frame" else 1  # the frames before it are stored
    rows = _rows(agencies)
    assert len(rows) == duplicate and len({own for _, own, _ in rows}) == duplicate
    (denied,) = _entries(agencies, AuditEvent.RECEIVE_DENIED, session)
    second = run.sealed[0 if variant == "same-frame" else 1]
    assert denied["handle"] == second.release_id.hex()
    assert denied["digest"] == second.digest.hex()
    if variant != "same-frame":
        assert second.release_id not in {rid for rid, _, _ in rows}
    received = _entries(agencies, AuditEvent.RELEASE_RECEIVED, session)
    assert len(received) == duplicate == len({e["handle"] for e in received})

    partner.honest()
    us2, _ = both_completed(agencies.run())
    assert us2.refused_by_us == 0
    rows = _rows(agencies)
    assert len(rows) == 10 and len({own for _, own, _ in rows}) == 10
    assert {own for _, own, _ in rows} == {own for _, _, own in agencies.ledger(US)}
    assert us2.received_total - us2.received_before == 10 - duplicate  # the ones missing
    assert agencies.stored(CA) == 10  # ours, each once, whatever the abort cut short
    assert [e["outcome"] for e in _run_ends(agencies)] == ["transfer-failed", "completed"]


# -- content games in a later session ------------------------------------------------------------


def _swap_first_two(decision: Decision) -> Decision:
    first, second, *rest = decision.matches
    swapped = (
        dataclasses.replace(first, local_record_id=second.local_record_id),
        dataclasses.replace(second, local_record_id=first.local_record_id),
    )
    return dataclasses.replace(decision, matches=(*swapped, *rest))


def _regrade(path: Path, record_id: str) -> None:
    """The partner changes the source grading (released, part of the content) of one record."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    column = rows[0].index("Grading")
    grades = sorted({r[column] for r in rows[1:]})
    (row,) = [r for r in rows[1:] if r[0] == record_id]
    row[column] = next(g for g in grades if g != row[column])
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.mark.parametrize("game", ["copies", "swapped", "regraded"])
def test_content_sent_again_is_stored_once_per_own_record_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, game: str
) -> None:
    """Session 2, after a complete session 1:

    - ``copies``: the partner "forgets" its ledger and sends all ten releases again (new release
      ids, same content): each is receipted, none is stored again (§10.4);
    - ``swapped``: the same, but the releases of its first two matches are swapped, so two of our
      records each get content we hold for the other one: stored, as new, for that record;
    - ``regraded``: the partner changed one released record (its grading): the new version is
      sent (its ledger has no such version) and stored beside the old one.

    In every case nothing we held is lost, nothing is held twice for one own record."""
    partner = Partner(monkeypatch)
    agencies = Agencies(tmp_path)
    _first(agencies)
    before = _rows(agencies)
    content_of = {own: content for _, own, content in before}
    if game == "regraded":
        _regrade(agencies.files[CA][0], sorted(partner.runs[0].record_of.values())[0])
    else:
        partner.forget_ledger = True
        partner.remap = _swap_first_two if game == "swapped" else None

    us, ca = both_completed(agencies.run())
    rows = _rows(agencies)
    assert set(before) <= set(rows)  # nothing lost
    pairs = [(own, content) for _, own, content in rows]
    assert len(pairs) == len(set(pairs))  # one copy of each content per own record
    new = [(own, content) for rid, own, content in rows if (rid, own, content) not in before]
    sent = {"copies": 10, "swapped": 10, "regraded": 1}[game]
    assert ca.released_total == sent and ca.receipts_verified == sent
    assert us.received_total == sent and us.refused_by_us == 0
    assert us.received_before == sent - len(new)
    if game == "copies":
        assert new == []
    elif game == "swapped":
        assert len(new) == 2
        (a, got_a), (b, got_b) = new
        assert (got_a, got_b) == (content_of[b], content_of[a])
    else:
        ((own, content),) = new
        assert content not in content_of.values() and own in content_of
    session = us.session_id
    assert len(_entries(agencies, AuditEvent.RECEIPT_SENT, session)) == sent
    assert len(_entries(agencies, AuditEvent.RELEASE_RECEIVED, session)) == len(new)
    assert not _entries(agencies, AuditEvent.RECEIVE_DENIED)
    inbound = {"received": len(new), "held-before": sent - len(new), "none": 10 - sent}
    assert _inbound(us) == {status: n for status, n in inbound.items() if n}
    assert [(e["outcome"], e["received"]) for e in _run_ends(agencies)] == [
        ("completed", 10),
        ("completed", sent),
    ]


# -- receipts withheld or forged -----------------------------------------------------------------


def _garbage(run: PartnerRun, i: int, got: Answer) -> Answer:
    return True, random.Random(i).randbytes(40 + i)


def _shifted(run: PartnerRun, i: int, got: Answer) -> Answer:
    # A genuine receipt (its own signature), for the release before this one.
    return (True, run.issued[i - 1][1]) if i else (True, b"")


def _refuse(run: PartnerRun, i: int, got: Answer) -> Answer:
    return False, b"not-decided"


def _answers(partner: Partner, mode: str) -> tuple[Any, Any]:
    """The partner's answer to our releases in sessions 1 and 2 for each mode."""

    def stale(run: PartnerRun, i: int, got: Answer) -> Answer:
        return True, partner.runs[0].issued[i][1]  # its genuine receipt of session 1

    def reflected(run: PartnerRun, i: int, got: Answer) -> Answer:
        return True, partner.runs[0].answers_from_us[i][1]  # one we signed for its release

    return {
        "refused": (_refuse, _refuse),
        "garbage": (_garbage, _garbage),
        "shifted": (_shifted, _shifted),
        "stale": (_refuse, stale),
        "reflected": (_refuse, reflected),
    }[mode]


@pytest.mark.parametrize("mode", ["refused", "garbage", "shifted", "stale", "reflected"])
def test_withheld_or_forged_receipts_keep_our_releases_offered_until_one_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The partner takes our releases into its store but answers them, two sessions running,
    with REFUSED, garbage, its genuine receipt of another release of ours, its genuine receipts
    of session 1 (for the releases re-sent in session 2), or receipts we signed for its own
    releases. None verifies: our ledger keeps every item TAKEN (no new item), each session
    sends each decided record once, afresh, audited as RELEASE_SENT without RECEIPT_RECEIVED;
    the first honest answer delivers them all, and its store holds each once."""
    partner = Partner(monkeypatch)
    agencies = Agencies(tmp_path)
    sent_ids: list[set[str]] = []
    ledger: list[tuple[Any, ...]] = []
    for session, answer in enumerate(_answers(partner, mode)):
        partner.answer = answer
        us, ca = both_completed(agencies.run())
        assert us.decided == 10 and us.released_total == 10 and us.delivered_before == 0
        assert us.receipts_verified == 0
        assert us.refused_by_peer == (10 if answer is _refuse else 0)
        sent = _entries(agencies, AuditEvent.RELEASE_SENT, us.session_id)
        ids = {e["handle"] for e in sent}
        assert len(sent) == len(ids) == 10
        assert all(not ids & earlier for earlier in sent_ids)  # built afresh
        sent_ids.append(ids)
        assert not _entries(agencies, AuditEvent.RECEIPT_RECEIVED)
        # What the partner did to each of our releases is in our log, by release id.
        refused = _entries(agencies, AuditEvent.RELEASE_REFUSED, us.session_id)
        invalid = _entries(agencies, AuditEvent.RECEIPT_INVALID, us.session_id)
        if answer is _refuse:
            assert {e["handle"] for e in refused} == ids and not invalid
        else:
            assert {e["handle"] for e in invalid} == ids and not refused
        if session == 0:
            ledger = agencies.ledger(US)
            assert len(ledger) == 10 and {state for _, state, _ in ledger} == {"TAKEN"}
            assert us.received_total == 10 and ca.receipts_verified == 10
        assert agencies.ledger(US) == ledger
        assert agencies.stored(CA) == 10  # it has them all, once
        assert ca.received_total == 10 and ca.received_before == 10 * session
    assert agencies.stored(US) == 10

    partner.honest()
    us, ca = both_completed(agencies.run())
    assert us.released_total == us.receipts_verified == 10 and us.refused_by_peer == 0
    sent = _entries(agencies, AuditEvent.RELEASE_SENT, us.session_id)
    got = _entries(agencies, AuditEvent.RECEIPT_RECEIVED, us.session_id)
    assert [e["handle"] for e in got] == [e["handle"] for e in sent]
    assert len(_entries(agencies, AuditEvent.RECEIPT_RECEIVED)) == 10
    assert [(i, r) for i, _, r in agencies.ledger(US)] == [(i, r) for i, _, r in ledger]
    assert {state for _, state, _ in agencies.ledger(US)} == {"SENT"}
    assert agencies.stored(CA) == 10 and ca.received_before == 10
    assert agencies.stored(US) == 10 and us.received_total == 0
    ends = _run_ends(agencies)
    assert [(e["outcome"], e["released"]) for e in ends] == [("completed", 10)] * 3

    _, _ = both_completed(agencies.run())  # and once delivered, never again
    assert _run_ends(agencies)[-1]["released"] == 0
    assert agencies.stored(CA) == 10


# -- a partner that hangs up once it has our releases --------------------------------------------


HANG_UPS = {
    "receipts-then-hangup": frozenset({RECEIPTS_END}),  # answers every release, then leaves
    "silent-hangup": frozenset({RECEIPT, REFUSED, RECEIPTS_END}),  # answers nothing
}


def _hang_up(agencies: Agencies, partner: Partner, how: str) -> AgencyOutcome:
    """Session 1: the partner stores our releases, sends its own, and closes the connection
    without its RECEIPTS_END (and, ``silent-hangup``, without any answer)."""
    partner.drop = HANG_UPS[how]
    out = agencies.run()
    error, ca = out[US], out[CA]
    assert isinstance(error, XlinkError), error  # an xlink error, not a crash
    assert isinstance(ca, AgencyOutcome), ca  # the partner saw everything it wanted
    assert ca.received_total == agencies.stored(CA) == 10  # it has our ten releases
    (end,) = _run_ends(agencies)
    assert (end["outcome"], end["code"]) == ("transfer-failed", "UNEXPECTED_MESSAGE")
    (aborted,) = _entries(agencies, AuditEvent.SESSION_ABORTED)
    assert aborted["code"] == "UNEXPECTED_MESSAGE" and aborted["side"] == "LOCAL"
    return ca


def test_receipts_that_came_before_a_hang_up_are_settled_as_they_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 1: the partner answers each of our releases with its genuine receipt, then hangs
    up before RECEIPTS_END. Each receipt was settled when it arrived (issue 14: every event is
    written when it happens): audited RECEIPT_RECEIVED, its checkpoint countersigned, the
    ledger item SENT with the receipt kept. So the next exchange sends none of them again."""
    partner = Partner(monkeypatch)
    agencies = Agencies(tmp_path)
    _hang_up(agencies, partner, "receipts-then-hangup")
    assert {state for _, state, _ in agencies.ledger(US)} == {"SENT"}
    assert len(_entries(agencies, AuditEvent.RECEIPT_RECEIVED)) == 10
    assert len(_entries(agencies, AuditEvent.CHECKPOINT_RECEIVED)) == 10
    kept = agencies.rows(US, "queue.db", "SELECT receipt FROM release_queue")
    assert [r[0] for r in kept] == [got for _, got in partner.runs[0].issued]

    partner.honest()
    us, _ = both_completed(agencies.run())
    assert us.released_total == 0 and us.delivered_before == 10


def test_a_partner_that_hangs_up_with_our_releases_then_claims_old_receipts_gets_no_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 1: the partner takes our releases (its store issues genuine receipts) and hangs
    up without sending any. Session 2: it answers the releases we send again with those
    receipts of session 1, as if delivery had happened then. Neither counts: our ledger stays
    TAKEN until session 3, where an honest answer delivers them; its releases to us, receipted
    in session 1, are held once and not sent again."""
    partner = Partner(monkeypatch)
    agencies = Agencies(tmp_path)
    _hang_up(agencies, partner, "silent-hangup")
    ledger = agencies.ledger(US)
    assert len(ledger) == 10 and {state for _, state, _ in ledger} == {"TAKEN"}
    assert agencies.stored(US) == 10  # its releases came before the hang-up: kept, once
    assert not _entries(agencies, AuditEvent.RECEIPT_RECEIVED)
    assert all(ok for ok, _ in partner.runs[0].issued)

    partner.honest()
    partner.answer = lambda run, i, got: (True, partner.runs[0].issued[i][1])
    us, ca = both_completed(agencies.run())
    assert us.released_total == 10 and us.receipts_verified == 0 and us.refused_by_peer == 0
    assert agencies.ledger(US) == ledger
    assert ca.released_total == 0 and ca.delivered_before == 10  # our receipts reached it
    assert agencies.stored(CA) == 10 and ca.received_before == 10

    partner.honest()
    us, ca = both_completed(agencies.run())
    assert us.released_total == us.receipts_verified == 10
    assert {state for _, state, _ in agencies.ledger(US)} == {"SENT"}
    assert agencies.stored(CA) == 10 and agencies.stored(US) == 10
    assert [e["outcome"] for e in _run_ends(agencies)] == [
        "transfer-failed",
        "completed",
        "completed",
    ]
    assert len(_entries(agencies, AuditEvent.RECEIPT_RECEIVED)) == 10


@pytest.mark.parametrize("how", sorted(HANG_UPS))
def test_releases_a_partner_took_before_hanging_up_are_audited_as_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    partner = Partner(monkeypatch)
    agencies = Agencies(tmp_path)
    _hang_up(agencies, partner, how)
    sent = _entries(agencies, AuditEvent.RELEASE_SENT)
    assert len(sent) == len({e["handle"] for e in sent}) == 10
