"""A dishonest partner in the release transfer (issue 11: item 3's decided-pairs digest, item 4,
attack 6): it sends correctly signed releases for handles it never matched, announces more
releases than we decided, sends a decided-pairs digest that is not ours, or speaks transfer v0.
Each is refused with a code, nothing of it is stored, and the refusal is audited; over TLS the
first such release ends the transfer (``BAD_RELEASE``), so nothing more of ours leaves. An
honest exchange still transfers everything.

In memory, a hand-written partner (frames built from xlink-release-v1 §10, not from the
module under test) faces the real transfer and the real store; over real TLS, a partner built
on the library with one step falsified faces `run_agency`.

On the code before this change the store kept any signed release of the session (200 of 200),
the transfer had no digest frame, and these tests fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import json
import random
import sys
import tracemalloc
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "release"))
sys.path.insert(0, str(ROOT / "tests" / "store"))

from _agencies import Agencies  # noqa: E402
from _forging import forge_releases_of  # noqa: E402
from _stalling import against_a_stalling_peer, drip  # noqa: E402
from _store_support import (  # noqa: E402
    AUDIT_KEY,
    CA,
    MOU,
    SEALING,
    SESSION,
    SIGNING,
    T0,
    US,
    make_record,
    open_store,
    seal,
)

import xlink.agency._agency as runner  # noqa: E402
import xlink.agency._exchange as exchange_step  # noqa: E402
from xlink.agency._inbound import ending_on_dishonesty  # noqa: E402
from xlink.agency._transfer import agree_and_label  # noqa: E402
from xlink.audit import AuditEvent, AuditLog, verify_log  # noqa: E402
from xlink.decide import Decision, decide  # noqa: E402
from xlink.errors import BadRelease, XlinkError  # noqa: E402
from xlink.protocol.abort import AbortCode  # noqa: E402
from xlink.protocol.config import Role  # noqa: E402
from xlink.protocol.limits import MAX_MESSAGE_SIZE  # noqa: E402
from xlink.release import (  # noqa: E402
    SealedRelease,
    open_release,
    verify_receipt,
)
from xlink.release.label import per_handle, seal_labelled  # noqa: E402
from xlink.release.transfer import (  # noqa: E402
    RELEASE_MAGIC,
    U32,
    Answer,
    FrameType,
    ReleaseReceived,
    ReleaseTransfer,
    TransferState,
    transfer_frame,
)
from xlink.store.store import DecidedMatches  # noqa: E402
from xlink.transport import MemoryConnection, TransportTimeout, memory_pair  # noqa: E402
from xlink.transport.release_transfer import (  # noqa: E402
    DecisionMismatch,
    TransferError,
    TransferGate,
    TransferResult,
    agree_decided_pairs,
    decided_pairs_digest,
    transfer_releases,
)

TIMEOUT = 5.0  # a hang fails the test instead of blocking it
INIT = Role.INITIATOR
VECTORS = ROOT / "protocols" / "vectors" / "release-transfer-v3" / "decided-pairs.json"
DATA = ROOT / "xlink" / "data"

# xlink-release-v1 §10, written out here rather than imported.
MAGIC = b"\xf0XR\x03"
V2_MAGIC = b"\xf0XR\x02"
V1_MAGIC = b"\xf0XR\x01"
V0_MAGIC = b"\xf0XRT"
COUNT, RELEASE, END, RECEIPT, REFUSED, RECEIPTS_END, DIGEST = range(1, 8)


def frame(kind: int, body: bytes = b"", magic: bytes = MAGIC) -> bytes:
    return magic + bytes([kind]) + body


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


# In the in-memory runs below US-DHS is the PSI session's responder and the partner its
# initiator; each DIGEST names its sender (§10.1).
INITIATOR, RESPONDER = 1, 2
SENDERS = {"initiator": INITIATOR, "responder": RESPONDER}


def reference_digest(
    session_id: bytes, pairs: Sequence[Sequence[bytes]], sender: int = INITIATOR
) -> bytes:
    """§10.1 transcribed: the digest a side sends (by default the partner's, the
    initiator's)."""
    label = b"xlink-release/decided-pairs"
    ordered = sorted((sorted(p) for p in pairs), key=b"".join)
    data = u32(len(label)) + label + bytes([sender]) + session_id + u32(len(ordered))
    for p in ordered:
        data += u32(len(p)) + b"".join(p)
    return hashlib.sha256(data).digest()


def random_pairs(rng: random.Random, n: int) -> list[tuple[bytes, ...]]:
    return [tuple(rng.randbytes(16) for _ in range(1 + i % 3)) for i in range(n)]


def partner_frames(
    decided: Sequence[Sequence[bytes]], releases: Sequence[SealedRelease]
) -> list[bytes]:
    """A partner with the right digest that sends ``releases`` and expects none."""
    return [
        frame(DIGEST, reference_digest(SESSION, decided)),
        frame(COUNT, u32(len(releases))),
        *(frame(RELEASE, s.data) for s in releases),
        frame(END),
        frame(RECEIPTS_END, u32(0)),
    ]


# -- the decided-pairs digest --------------------------------------------------------------------


def test_digest_vectors() -> None:
    vectors = json.loads(VECTORS.read_text())
    assert vectors["label"] == "xlink-release/decided-pairs"
    assert len(vectors["cases"]) >= 4
    assert vectors["sender_bytes"] == SENDERS
    for case in vectors["cases"]:
        session_id = bytes.fromhex(case.get("session_id", vectors["session_id"]))
        pairs = [[bytes.fromhex(h) for h in p] for p in case["pairs"]]
        for side, role in (("initiator", Role.INITIATOR), ("responder", Role.RESPONDER)):
            digest = case["digests"][side]
            assert decided_pairs_digest(session_id, pairs, sender=role).hex() == digest
            assert reference_digest(session_id, pairs, SENDERS[side]).hex() == digest


def test_digest_does_not_depend_on_the_order_of_pairs_or_handles() -> None:
    rng = random.Random(3)
    pairs = random_pairs(rng, 40)
    expected = decided_pairs_digest(SESSION, pairs, sender=Role.INITIATOR)
    assert expected == reference_digest(SESSION, pairs)
    for _ in range(10):
        shuffled = [rng.sample(p, len(p)) for p in pairs]
        rng.shuffle(shuffled)
        assert decided_pairs_digest(SESSION, shuffled, sender=Role.INITIATOR) == expected
        assert decided_pairs_digest(SESSION, (iter(p) for p in shuffled), sender=INIT) == expected


def test_digest_changes_with_the_decision() -> None:
    rng = random.Random(4)
    pairs = random_pairs(rng, 6)
    base = decided_pairs_digest(SESSION, pairs, sender=INIT)
    moved = [pairs[0] + pairs[1][:1], pairs[1][1:], *pairs[2:]]  # one handle, another pair
    assert sum(map(len, moved)) == sum(map(len, pairs))
    others = [
        pairs[:-1],  # one pair fewer
        [*pairs, (rng.randbytes(16),)],  # one more
        [*pairs, pairs[0]],  # the same pair decided twice
        moved,
        [pairs[0] + pairs[1], *pairs[2:]],  # two pairs merged
    ]
    digests = {base, decided_pairs_digest(b"\xff" * 16, pairs, sender=INIT)}
    digests.add(decided_pairs_digest(SESSION, pairs, sender=Role.RESPONDER))  # the other side
    digests |= {decided_pairs_digest(SESSION, p, sender=INIT) for p in others}
    assert len(digests) == len(others) + 3


@pytest.mark.parametrize(
    ("session_id", "pairs"),
    [(b"\x00" * 15, []), ("00" * 16, []), (SESSION, [["not bytes"]])],
)
def test_digest_refuses_bad_input(session_id: Any, pairs: Any) -> None:
    with pytest.raises(ValueError):
        decided_pairs_digest(session_id, pairs, sender=INIT)
    with pytest.raises(ValueError):
        decided_pairs_digest(SESSION, [], sender=1)  # type: ignore[arg-type]


# -- in memory: a hand-written partner against the real transfer and store ----------------------


@dataclasses.dataclass
class Run:
    """What one in-memory transfer did, seen from US-DHS (honest) and from the partner."""

    result: TransferResult | None
    error: BaseException | None
    to_partner: list[bytes]  # every frame US-DHS sent, in order
    stored: int
    audit: list[tuple[AuditEvent, dict[str, Any]]]
    refusals: list[str]


def forged(n: int, handles: Sequence[bytes]) -> SealedRelease:
    """The ``n``-th release of CA-RCMP to US-DHS for ``handles``: signed with CA-RCMP's real
    key, in the real session, sealed to US-DHS; everything but the handles is genuine."""
    sealed: SealedRelease = seal(make_record(n, match_handles=tuple(handles)))
    return sealed


def run_transfer(
    directory: Path,
    *,
    decided: Sequence[Sequence[bytes]],
    partner_frames: Sequence[bytes],
    ours: Sequence[SealedRelease] = (),
) -> Run:
    """US-DHS, having decided ``decided``, runs release transfer v3 (digest, then releases)
    against a partner that sends ``partner_frames`` at once (a RECEIPTS_END once US-DHS's END
    is in, which it answers) and records what it receives."""
    refusals: list[str] = []
    directory.mkdir(parents=True, exist_ok=True)
    with AuditLog.open(directory / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(directory / "store.db", audit=audit) as store:
            expected = DecidedMatches(decided)

            def refusing(data: bytes) -> Answer:
                try:
                    receipt = store.receive(
                        data, expected_session_id=SESSION, now=T0, expected_matches=expected
                    )
                except XlinkError as exc:
                    reason = str(getattr(exc, "reasons", [type(exc).__name__])[0])
                    refusals.append(reason)
                    return Answer(False, reason.encode())
                return Answer(True, receipt)

            store_one = ending_on_dishonesty(refusing)  # as run_agency's

            async def us(conn: MemoryConnection) -> TransferResult:
                gate = TransferGate(conn)
                try:
                    await agree_decided_pairs(gate, SESSION, decided, TIMEOUT, role=Role.RESPONDER)
                    return await transfer_releases(gate, ours, store_one, TIMEOUT)
                finally:
                    await conn.close(1.0)  # as run_agency: room for the end of stream

            async def partner(conn: MemoryConnection) -> list[bytes]:
                our_end = asyncio.Event()

                async def send_all() -> None:
                    for f in partner_frames:
                        if f[:5] == frame(RECEIPTS_END):
                            await our_end.wait()  # it answers our END (§10), as a peer's does
                        await conn.send(f)

                sending = asyncio.create_task(send_all())
                received = []
                while (message := await conn.receive()) is not None:
                    received.append(message)
                    if message == frame(END):
                        our_end.set()
                our_end.set()
                sending.cancel()
                with contextlib.suppress(BaseException):
                    await sending
                return received

            async def scenario() -> tuple[TransferResult | BaseException, list[bytes]]:
                ours_end, theirs_end = memory_pair(capacity=8)
                got = await asyncio.wait_for(
                    asyncio.gather(us(ours_end), partner(theirs_end), return_exceptions=True),
                    4 * TIMEOUT,
                )
                outcome, frames = got
                assert isinstance(frames, list), frames
                return outcome, frames

            outcome, frames = asyncio.run(scenario())
            stored = len(store.list(T0))
        entries = [(e.kind, dict(e.fields)) for e in audit.entries()]
    assert verify_log(directory / "audit.db", AUDIT_KEY.verify_key).ok
    if isinstance(outcome, BaseException):
        return Run(None, outcome, frames, stored, entries, refusals)
    return Run(outcome, None, frames, stored, entries, refusals)


def _ended_by(run: Run, reason: str) -> dict[str, Any]:
    """Check that the partner's release refused for ``reason`` ended the transfer: the coded
    abort, no answer sent to it (nor to any release after it), audited once; the entry."""
    assert run.result is None
    assert isinstance(run.error, BadRelease), run.error
    assert (run.error.code, run.error.reason) == (AbortCode.BAD_RELEASE, reason)
    assert [f for f in run.to_partner if f[4] in (REFUSED, RECEIPTS_END)] == []
    (denied,) = [f for k, f in run.audit if k is AuditEvent.RECEIVE_DENIED]
    assert denied["reason"] == reason
    return denied


def test_unsolicited_releases_end_the_transfer_at_the_first(scratch: Path) -> None:
    """Attack 6: 200 releases, correctly signed with the partner's real key in the real
    session, for handles we never matched. Before: 200 of 200 stored; then each refused while
    the transfer went on. Now the first is refused, audited and ends the transfer."""
    rng = random.Random(6)
    decided = random_pairs(rng, 200)
    fake = [forged(i, pair) for i, pair in enumerate(random_pairs(rng, 200))]
    run = run_transfer(scratch, decided=decided, partner_frames=partner_frames(decided, fake))
    denied = _ended_by(run, "not-decided")
    assert run.stored == 0 and run.refusals == ["not-decided"]
    assert [f for f in run.to_partner if f[4] == RECEIPT] == []
    assert [k for k, _ in run.audit] == [AuditEvent.RECEIVE_DENIED]
    assert (denied["handle"], denied["digest"]) == (fake[0].release_id.hex(), fake[0].digest.hex())
    assert (denied["session"], denied["peer"]) == (SESSION.hex(), CA)
    # The audit names the release, never the match handles it claimed.
    text = json.dumps([fields for _, fields in run.audit])
    assert not any(h.hex() in text for h in _handles_of(fake[0]))


def test_what_had_not_left_when_a_bad_release_came_stays_with_us(scratch: Path) -> None:
    """Forty releases of ours are due; the partner sends one unsolicited release at once and
    would answer ours later: the bad release ends the transfer, and what was still ours to send
    (here nearly all of it: the connection holds 8 frames) never leaves. On the code before,
    the transfer went on and all forty reached the partner."""
    rng = random.Random(16)
    decided = random_pairs(rng, 40)
    ours = [seal(make_record(i, sender=US)) for i in range(40)]
    bad = forged(0, (rng.randbytes(16),))
    run = run_transfer(
        scratch,
        decided=decided,
        ours=ours,
        partner_frames=partner_frames(decided, [bad])[:-1],  # it would answer ours later
    )
    _ended_by(run, "not-decided")
    sent = [f for f in run.to_partner if f[4] == RELEASE]
    assert len(sent) <= 8
    assert [f[5:] for f in sent] == [s.data for s in ours[: len(sent)]]


def test_releases_whose_signed_times_lie_are_refused_and_audited_once(scratch: Path) -> None:
    """A partner signs true releases for our decided matches but lies about when it made
    them: dated so far back that their retention ran out before they arrived (stored,
    expired at once, and receipted: the partner held our receipt for a release nobody may
    read), or dated ahead of our clock (a later expiry than the MOU allows). Each is refused
    with its code, stored nowhere and audited once; an honest release beside them is stored."""
    rng = random.Random(9)
    decided = random_pairs(rng, 3)
    retention = timedelta(days=make_record(0).caveats.retention_days)
    lying = [
        seal(make_record(0, match_handles=decided[0], created_at=T0 - retention)),
        seal(make_record(1, match_handles=decided[1], created_at=T0 + timedelta(days=2))),
    ]
    honest = forged(2, decided[2])
    frames = partner_frames(decided, [*lying, honest])
    run = run_transfer(scratch, decided=decided, partner_frames=frames)
    assert run.error is None and run.result is not None
    assert run.stored == 1
    assert run.refusals == ["retention-expired", "created-in-future"]
    answers = [f for f in run.to_partner if f[4] in (RECEIPT, REFUSED)]
    assert answers[:2] == [
        frame(REFUSED, b"retention-expired"),
        frame(REFUSED, b"created-in-future"),
    ]
    assert answers[2][4] == RECEIPT
    denied = [f for k, f in run.audit if k is AuditEvent.RECEIVE_DENIED]
    assert [d["reason"] for d in denied] == ["retention-expired", "created-in-future"]
    assert [d["handle"] for d in denied] == [s.release_id.hex() for s in lying]


def _handles_of(sealed: SealedRelease) -> tuple[bytes, ...]:
    record = open_release(sealed, SEALING[US], mou=MOU, expected_session_id=SESSION)
    return record.match_handles


def test_a_decided_match_in_any_order_of_its_handles_is_stored(scratch: Path) -> None:
    rng = random.Random(7)
    a, b, c = (rng.randbytes(16) for _ in range(3))
    decided = [(a, b), (c,)]
    sent = [forged(1, (b, a)), forged(5, (c,))]  # handles in another order
    run = run_transfer(scratch, decided=decided, partner_frames=partner_frames(decided, sent))
    assert run.error is None and run.refusals == [] and run.stored == 2
    answers = [f[4] for f in run.to_partner if f[4] in (RECEIPT, REFUSED)]
    assert answers == [RECEIPT, RECEIPT]
    received = [f["handle"] for k, f in run.audit if k is AuditEvent.RELEASE_RECEIVED]
    assert received == [s.release_id.hex() for s in sent]


@pytest.mark.parametrize(
    ("claimed", "reason"),
    [("subset", "not-decided"), ("superset", "not-decided"), ("again", "match-already-received")],
)
def test_only_exactly_a_decided_match_and_only_once(
    scratch: Path, claimed: str, reason: str
) -> None:
    """Handles must equal, as a set, those of one decided match (not a subset, not a
    superset), and each decided match takes one release: a release after an honest one that
    breaks this ends the transfer; the honest one stays stored, receipted."""
    rng = random.Random(7)
    a, b, c, d, e = (rng.randbytes(16) for _ in range(5))
    decided = [(a, b), (c,), (d, e), (d,), (e,)]
    handles = {"subset": (a,), "superset": (a, b, c), "again": (a, b)}[claimed]
    sent = [forged(1, (b, a)), forged(2, handles), forged(5, (c,))]
    run = run_transfer(scratch, decided=decided, partner_frames=partner_frames(decided, sent))
    denied = _ended_by(run, reason)
    assert denied["handle"] == sent[1].release_id.hex()
    assert run.stored == 1 and run.refusals == [reason]
    received = [f["handle"] for k, f in run.audit if k is AuditEvent.RELEASE_RECEIVED]
    assert received == [sent[0].release_id.hex()]


def test_a_repeated_handle_set_takes_as_many_releases_as_it_was_decided(scratch: Path) -> None:
    rng = random.Random(8)
    pair = (rng.randbytes(16), rng.randbytes(16))
    decided = [pair, pair, (rng.randbytes(16),)]  # two decided matches on the same values
    sent = [forged(i, pair) for i in (1, 2, 3)]
    run = run_transfer(scratch, decided=decided, partner_frames=partner_frames(decided, sent))
    _ended_by(run, "match-already-received")  # the third
    assert run.refusals == ["match-already-received"] and run.stored == 2


def test_more_releases_announced_than_decided_aborts_before_storing(scratch: Path) -> None:
    rng = random.Random(9)
    decided = random_pairs(rng, 3)
    genuine = [forged(i, pair) for i, pair in enumerate(decided)]
    frames = [
        frame(DIGEST, reference_digest(SESSION, decided)),
        frame(COUNT, u32(4)),
        *(frame(RELEASE, s.data) for s in [*genuine, forged(9, decided[0])]),
        frame(END),
    ]
    run = run_transfer(scratch, decided=decided, partner_frames=frames)
    assert isinstance(run.error, TransferError)
    assert run.error.code is AbortCode.TOO_MANY_RELEASES
    assert run.stored == 0 and run.refusals == [] and run.audit == []


def test_a_different_decided_pairs_digest_aborts_before_any_release(scratch: Path) -> None:
    """Item 3: the partner decided (or claims) other pairs. We send our digest and nothing
    else: no COUNT, no release; nothing of the partner's is stored."""
    rng = random.Random(10)
    decided = random_pairs(rng, 5)
    ours = [seal(make_record(i, sender=US)) for i in range(3)]
    theirs = [forged(i, pair) for i, pair in enumerate(decided)]
    for claimed in (decided[:-1], [*decided, (rng.randbytes(16),)], []):
        frames = [
            frame(DIGEST, reference_digest(SESSION, claimed)),
            frame(COUNT, u32(len(theirs))),
            *(frame(RELEASE, s.data) for s in theirs),
            frame(END),
        ]
        directory = scratch / str(len(claimed))
        run = run_transfer(directory, decided=decided, partner_frames=frames, ours=ours)
        assert isinstance(run.error, DecisionMismatch)
        assert run.error.code is AbortCode.DECISION_MISMATCH
        assert run.to_partner == [frame(DIGEST, reference_digest(SESSION, decided, RESPONDER))]
        assert run.stored == 0 and run.audit == []


def test_our_own_digest_sent_back_aborts_before_any_release(scratch: Path) -> None:
    """The partner sends our DIGEST back as its own (a reflection), whatever it decided. In
    release transfer v2 the digest did not name its sender, so ours passed as agreement; in v3
    it does, and the reflection is a mismatch like any other: nothing released or stored."""
    rng = random.Random(11)
    decided = random_pairs(rng, 5)
    ours = [seal(make_record(i, sender=US)) for i in range(3)]
    theirs = [forged(i, pair) for i, pair in enumerate(decided)]
    reflected = frame(DIGEST, reference_digest(SESSION, decided, RESPONDER))
    frames = [reflected, frame(COUNT, u32(len(theirs))), *(frame(RELEASE, s.data) for s in theirs)]
    run = run_transfer(scratch, decided=decided, partner_frames=[*frames, frame(END)], ours=ours)
    assert isinstance(run.error, DecisionMismatch)
    assert run.to_partner == [reflected]  # our DIGEST, and nothing after it
    assert run.stored == 0 and run.audit == []


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (frame(COUNT, u32(0)), AbortCode.UNEXPECTED_MESSAGE),  # no digest first
        (frame(DIGEST, b"\x00" * 31), AbortCode.UNEXPECTED_MESSAGE),  # short digest
        (frame(COUNT, u32(0), magic=V0_MAGIC), AbortCode.UNSUPPORTED_VERSION),  # a v0 peer
        (frame(DIGEST, b"\x00" * 32, magic=V1_MAGIC), AbortCode.UNSUPPORTED_VERSION),  # a v1 peer
        (frame(DIGEST, b"\x00" * 32, magic=V2_MAGIC), AbortCode.UNSUPPORTED_VERSION),  # a v2 peer
    ],
)
def test_a_partner_that_skips_the_digest_is_refused(
    scratch: Path, first: bytes, code: AbortCode
) -> None:
    rng = random.Random(12)
    decided = random_pairs(rng, 2)
    rest = [frame(RELEASE, forged(i, p).data) for i, p in enumerate(decided)]
    run = run_transfer(scratch, decided=decided, partner_frames=[first, *rest, frame(END)])
    assert isinstance(run.error, TransferError) and run.error.code is code
    assert len(run.to_partner) == 1 and run.to_partner[0][4] == DIGEST
    assert run.stored == 0


def test_an_honest_partner_gets_everything_through(scratch: Path) -> None:
    """Both sides honest, in memory: each side's releases are stored by the other, and every
    receipt verifies."""
    rng = random.Random(13)
    decided = random_pairs(rng, 4)
    from_ca = [forged(i, pair) for i, pair in enumerate(decided)]
    from_us = [seal(make_record(i, sender=US, match_handles=p)) for i, p in enumerate(decided)]
    results: dict[str, TransferResult] = {}
    logs = {a: scratch / f"{a}-audit.db" for a in (CA, US)}

    async def side(agency: str, conn: MemoryConnection, ours: list[SealedRelease]) -> None:
        with (
            AuditLog.open(logs[agency], signing_key=SIGNING[agency]) as audit,
            open_store(scratch / f"{agency}.db", agency=agency, audit=audit) as store,
        ):
            expected = DecidedMatches(reversed(decided))

            def store_one(data: bytes) -> tuple[bool, bytes]:
                return True, store.receive(
                    data, expected_session_id=SESSION, now=T0, expected_matches=expected
                )

            gate = TransferGate(conn)
            role = Role.INITIATOR if agency == CA else Role.RESPONDER
            await agree_decided_pairs(gate, SESSION, list(reversed(decided)), TIMEOUT, role=role)
            results[agency] = await transfer_releases(gate, ours, store_one, TIMEOUT)
            await conn.close()
            assert len(store.list(T0)) == len(decided)

    async def scenario() -> None:
        a, b = memory_pair(capacity=4)
        await asyncio.wait_for(asyncio.gather(side(CA, a, from_ca), side(US, b, from_us)), 20)

    asyncio.run(scenario())
    for agency, sent in ((CA, from_ca), (US, from_us)):
        answers = results[agency].answers
        assert [ok for ok, _ in answers] == [True] * len(sent)
        for release, (_, receipt) in zip(sent, answers, strict=True):
            verify_receipt(receipt, mou=MOU, release=release)
        assert verify_log(logs[agency], SIGNING[agency].verify_key).ok


# -- over real TLS: a partner built on the library, with one step falsified ---------------------


def _partner_release_aborts(agencies: Agencies, reason: str) -> dict[str, Any]:
    """Run both agencies; check that the partner's first release ended our transfer with
    ``BAD_RELEASE`` (no honest partner sends one): refused for ``reason``, audited once,
    stored nowhere, the abort and the run's end audited with the code. Returns the
    RECEIVE_DENIED entry."""
    out = agencies.run()
    error, partner = out[US], out[CA]
    assert isinstance(error, BadRelease), error
    assert (error.code, error.reason) == (AbortCode.BAD_RELEASE, reason)
    assert isinstance(partner, TransferError), partner  # it saw us hang up
    assert agencies.stored(US) == 0
    entries = agencies.audit(US)
    kinds = [k for k, _ in entries]
    assert AuditEvent.RELEASE_RECEIVED not in kinds and AuditEvent.RECEIPT_SENT not in kinds
    (denied,) = [f for k, f in entries if k is AuditEvent.RECEIVE_DENIED]
    assert kinds.count(AuditEvent.SESSION_ABORTED) == 1
    assert kinds[-2:] == [AuditEvent.SESSION_ABORTED, AuditEvent.RUN_ENDED]
    aborted, ended = entries[-2][1], entries[-1][1]
    assert (aborted["code"], aborted["side"], aborted["peer"]) == ("BAD_RELEASE", "LOCAL", CA)
    assert (ended["outcome"], ended["code"]) == ("transfer-failed", "BAD_RELEASE")
    assert (denied["reason"], denied["peer"]) == (reason, CA)
    assert denied["session"] == aborted["session"]
    return denied


def _is_partner(decision: Decision) -> bool:
    return any(m.local_record_id.startswith("CAWL") for m in decision.matches)


def test_real_tls_honest_run_transfers_everything(tmp_path: Path) -> None:
    agencies = Agencies(tmp_path)
    out = agencies.run()
    us, ca = out[US], out[CA]
    assert not isinstance(us, BaseException), us
    assert not isinstance(ca, BaseException), ca
    assert us.decided == ca.decided >= 5
    assert us.received == ca.released and ca.received == us.released
    assert us.received_total == ca.released_total > 0
    assert us.refused_by_us == ca.refused_by_us == 0
    assert us.receipts_verified == us.released_total and ca.receipts_verified == ca.released_total
    assert us.audit_ok and ca.audit_ok
    kinds = [k for k, _ in agencies.audit(US)]
    assert AuditEvent.SESSION_ABORTED not in kinds and AuditEvent.RECEIVE_DENIED not in kinds


def test_real_tls_a_release_for_handles_never_matched_aborts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner decides honestly (same digest) but builds each release, signed with its
    real key in the real session, for random handles instead of the decided pair's: the first
    ends the transfer, ``not-decided``."""
    forge_releases_of(CA, monkeypatch)
    _partner_release_aborts(Agencies(tmp_path), "not-decided")


def test_real_tls_a_different_decision_releases_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner decided one pair fewer than we did (e.g. after lying in its Reveal):
    the digests differ, both sides abort with DECISION_MISMATCH before any release is built,
    sent or stored, and our audit log says so with the code."""

    def lying(*args: Any, **kwargs: Any) -> Decision:
        decision = decide(*args, **kwargs)
        if _is_partner(decision):
            return dataclasses.replace(decision, matches=decision.matches[:-1])
        return decision

    monkeypatch.setattr(exchange_step, "decide", lying)
    agencies = Agencies(tmp_path)
    out = agencies.run()
    for agency in (US, CA):
        error = out[agency]
        assert isinstance(error, DecisionMismatch), error
        assert error.code is AbortCode.DECISION_MISMATCH
        assert agencies.stored(agency) == 0
    entries = agencies.audit(US)
    kinds = [k for k, _ in entries]
    assert AuditEvent.SESSION_COMPLETED in kinds
    assert AuditEvent.RELEASE_SENT not in kinds and AuditEvent.RELEASE_RECEIVED not in kinds
    (aborted,) = [f for k, f in entries if k is AuditEvent.SESSION_ABORTED]
    session = next(f["session"] for k, f in entries if k is AuditEvent.SESSION_COMPLETED)
    assert aborted == {
        "code": "DECISION_MISMATCH",
        "side": "LOCAL",
        "session": session,
        "peer": CA,
    }
    assert kinds[-2:] == [AuditEvent.SESSION_ABORTED, AuditEvent.RUN_ENDED]
    assert entries[-1][1]["outcome"] == "transfer-failed"
    assert entries[-1][1]["code"] == "DECISION_MISMATCH"


def test_real_tls_our_own_digest_sent_back_releases_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner waits for our DIGEST and sends it back in place of its own, then goes on
    as an honest party would. Before release transfer v3 both sides' digests were the same
    bytes, so a reflection passed as agreement whatever the partner had decided, and releases
    flowed; now each digest names its sender, and we abort with DECISION_MISMATCH before any
    release is built, sent or stored."""

    async def reflecting(
        gate: TransferGate, session: Any, decision: Decision, idle_timeout: float, **kw: Any
    ) -> Any:
        if _is_partner(decision):
            ours = await gate.next_transfer_frame(TIMEOUT)  # US-DHS's DIGEST
            gate.held.appendleft(ours)  # its own machine reads it as usual
            send = gate.send

            async def sending_ours_back(message: bytes) -> None:
                await send(ours if message[4] == DIGEST else message)

            gate.send = sending_ours_back  # type: ignore[method-assign]
        return await agree_and_label(gate, session, decision, idle_timeout, **kw)

    monkeypatch.setattr(exchange_step, "agree_and_label", reflecting)
    agencies = Agencies(tmp_path)
    out = agencies.run()
    error = out[US]
    assert isinstance(error, DecisionMismatch), error
    assert isinstance(out[CA], BaseException)  # the partner got nothing to go on with
    assert agencies.stored(US) == agencies.stored(CA) == 0
    entries = agencies.audit(US)
    kinds = [k for k, _ in entries]
    assert AuditEvent.RELEASE_SENT not in kinds and AuditEvent.RELEASE_RECEIVED not in kinds
    (aborted,) = [f for k, f in entries if k is AuditEvent.SESSION_ABORTED]
    assert (aborted["code"], aborted["side"], aborted["peer"]) == ("DECISION_MISMATCH", "LOCAL", CA)


def test_real_tls_more_releases_than_decided_aborts_and_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner agrees on the decided pairs, then announces one release more than we
    decided (its own library would refuse to, so it writes the frames itself)."""

    async def overselling(
        gate: TransferGate, ours: Sequence[SealedRelease], *args: Any, **kwargs: Any
    ) -> TransferResult:
        if not ours or ours[0].originator != CA:
            return await transfer_releases(gate, ours, *args, **kwargs)
        assert gate.decided is not None
        extra = ours[0].data  # a genuine release, announced and sent twice
        for f in [
            frame(COUNT, u32(gate.decided + 1)),
            *(frame(RELEASE, s.data) for s in ours),
            frame(RELEASE, extra),
            frame(END),
        ]:
            await gate.send(f)
        while True:  # until US-DHS hangs up
            await gate.next_transfer_frame(TIMEOUT)

    monkeypatch.setattr(exchange_step, "transfer_releases", overselling)
    agencies = Agencies(tmp_path)
    out = agencies.run()
    error = out[US]
    assert isinstance(error, TransferError), error
    assert error.code is AbortCode.TOO_MANY_RELEASES
    assert isinstance(out[CA], TransferError)  # the partner saw us hang up
    assert agencies.stored(US) == 0
    entries = agencies.audit(US)
    kinds = [k for k, _ in entries]
    assert AuditEvent.RELEASE_RECEIVED not in kinds
    assert kinds[-2:] == [AuditEvent.SESSION_ABORTED, AuditEvent.RUN_ENDED]
    assert entries[-2][1]["code"] == "TOO_MANY_RELEASES" and entries[-2][1]["side"] == "LOCAL"
    assert entries[-1][1]["outcome"] == "transfer-failed"


def test_real_tls_a_release_labelled_with_part_of_a_pair_aborts_as_not_decided(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Release transfer (v2 on) labels a release with one output for its whole decided pair. The
    partner labels each release handle by handle (as v1 did, here with made-up outputs) and
    names only part of the pair (or one handle more): no label names exactly one of our
    decided pairs, so the first is refused ``not-decided`` before any key is tried (v1 tried
    the key and said ``label-failed``) and ends the transfer; nothing is stored."""
    hand_over = runner.Agency.hand_over

    def partial(self: runner.Agency, sealed: Any, session_id: bytes, outputs_of: Any) -> bytes:
        if self.agency_id != CA:
            return hand_over(self, sealed, session_id, outputs_of)
        handles = sorted(sealed.match_handles)
        named = handles[:-1] if len(handles) > 1 else [*handles, b"\xff" * 16]
        return seal_labelled(
            sealed.data,
            named,
            session_id=session_id,
            outputs_of=lambda hs: [hashlib.sha256(h).digest() for h in hs],
            rng=self.rng,
        )

    monkeypatch.setattr(runner.Agency, "hand_over", partial)
    _partner_release_aborts(Agencies(tmp_path), "not-decided")


def test_real_tls_a_release_labelled_without_the_tokens_aborts_as_not_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partner decided honestly but labels its releases with outputs it made up instead of
    the ones its tokens give (as a party not holding the tokens would have to): the first does
    not open, is refused as label-failed, audited, and ends the transfer; nothing is stored."""

    hand_over = runner.Agency.hand_over

    def mislabel(self: runner.Agency, sealed: Any, session_id: bytes, outputs_of: Any) -> bytes:
        if self.agency_id == CA:  # the partner's side
            outputs_of = per_handle(lambda h: hashlib.sha256(b"guess" + h).digest())
        return hand_over(self, sealed, session_id, outputs_of)

    monkeypatch.setattr(runner.Agency, "hand_over", mislabel)
    _partner_release_aborts(Agencies(tmp_path), "label-failed")


def test_padded_releases_are_not_held_once_answered() -> None:
    """A partner pads each of its releases to the frame's limit (a sealed release is at most
    64 KiB): each is refused, and the machine kept every body until the transfer's end, a
    mebibyte per decided match (20 GB for 20,000). Only the count is kept now."""
    decided = 32
    pairs = [(i.to_bytes(16, "big"),) for i in range(1, decided + 1)]
    session_id = bytes(range(16))
    largest = MAX_MESSAGE_SIZE - len(RELEASE_MAGIC) - 1
    victim = ReleaseTransfer(session_id, pairs, role=Role.RESPONDER)
    partner = ReleaseTransfer(session_id, pairs, role=Role.INITIATOR)
    digest = partner.next_frame()
    assert digest is not None
    victim.receive(digest)
    assert victim.state is TransferState.AGREED
    victim.send_releases([])
    while victim.next_frame() is not None:
        pass
    victim.receive(transfer_frame(FrameType.COUNT, U32.pack(decided)))
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(decided):
            frame = transfer_frame(FrameType.RELEASE, i.to_bytes(4, "big") * (largest // 4))
            (event,) = victim.receive(frame)
            assert isinstance(event, ReleaseReceived)
            del frame, event
            victim.answer(False, b"label-failed")
            while victim.next_frame() is not None:
                pass
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 4 * 1024 * 1024, f"{held / 2**20:.0f} MiB held for {decided} refused releases"


def test_a_partner_dripping_releases_meets_the_transfers_time_limit() -> None:
    """After the PSI session, a partner sends its frames one inside each idle timeout (0.05 s
    apart against 0.5 s, a margin a stall of the shared event loop does not eat): 256 decided
    matches would hold the connection 13 s, and at the default timeout and 20,000 decided
    matches, two weeks. The transfer's time limit (here ten idle timeouts, 5 s: the pace is set
    so fast that the matches add nothing) ends it with TIMEOUT."""
    decided = 256
    pairs = [(i.to_bytes(16, "big"),) for i in range(1, decided + 1)]
    session_id = bytes(range(16))
    partner = ReleaseTransfer(session_id, pairs, role=Role.INITIATOR)

    def next_frame() -> bytes | None:
        if partner.state is TransferState.AGREED:
            partner.send_releases([b"padding"] * decided)
        return partner.next_frame()

    async def victim(conn: MemoryConnection) -> None:
        gate = TransferGate(conn)
        await agree_decided_pairs(gate, session_id, pairs, 0.5, role=Role.RESPONDER, min_pace=1e9)
        await transfer_releases(gate, [], lambda _data: (False, b"not-decided"), 0.5)

    error, elapsed = against_a_stalling_peer(
        victim, lambda theirs: drip(theirs, partner.receive, next_frame, every=0.05, stop_after=12)
    )
    assert isinstance(error, TransportTimeout), f"the dripping partner held the transfer: {error}"
    assert "time limit" in error.detail
    assert 5.0 <= elapsed < 9.0
