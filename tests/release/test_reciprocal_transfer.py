"""Reciprocal release (xlink-release-v1 §10.5), on the sans-I/O machine: each side offers its
count, sends the fewer of the two offers, and never has more than ``RECIPROCAL_AHEAD`` of its
releases out beyond the peer's releases it answered. Two machines run against each other in
every delivery order hypothesis finds; single machines are fed a peer written out from §10."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from typing import Any, cast

import pytest
from _transfer_support import (
    COUNT,
    DIGEST,
    END,
    RECEIPT,
    RECEIPTS_END,
    REFUSED,
    RELEASE,
    frame,
    u32,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.errors import BadRelease, LocalProtocolError
from xlink.protocol import AbortCode, Role
from xlink.release.transfer import (
    RECIPROCAL_AHEAD,
    OffersCounted,
    ReleaseReceived,
    ReleaseTransfer,
    TransferComplete,
    TransferError,
    TransferResult,
    TransferState,
    decided_pairs_digest,
)
from xlink.transport import MemoryConnection, memory_pair
from xlink.transport._transfer_io import Outbox
from xlink.transport.release_transfer import TransferGate, run_transfer

SID = bytes(range(16))
DECIDED = 40
PAIRS = [(bytes([i + 1]) * 16,) for i in range(DECIDED)]
W = 8  # §10.5, written out


def test_the_window_is_the_specs() -> None:
    assert RECIPROCAL_AHEAD == W


def _machine(role: Role) -> ReleaseTransfer:
    m = ReleaseTransfer(SID, PAIRS, role=role, reciprocal=True)
    other = Role.RESPONDER if role is Role.INITIATOR else Role.INITIATOR
    assert m.next_frame() == frame(DIGEST, decided_pairs_digest(SID, PAIRS, sender=role))
    m.receive(frame(DIGEST, decided_pairs_digest(SID, PAIRS, sender=other)))
    assert m.state is TransferState.AGREED
    return m


def _drain(m: ReleaseTransfer) -> list[bytes]:
    out = []
    while (f := m.next_frame()) is not None:
        out.append(f)
    return out


def _body(who: str, i: int) -> bytes:
    return f"{who}-release-{i}".encode()


class _Side:
    """One reciprocal side: offers ``offer`` releases, sends what is due, answers every release
    of the peer with a receipt, and records how far ahead it ever was."""

    def __init__(self, name: str, role: Role, offer: int) -> None:
        self.name, self.offer = name, offer
        self.m = _machine(role)
        self.m.offer(offer)
        self.sent = 0
        self.answered = 0
        self.received: list[bytes] = []
        self.most_ahead = 0

    def step(self) -> list[bytes]:
        if self.m.state is TransferState.COUNTED:
            assert self.m.to_send is not None
            self.m.send_releases([_body(self.name, i) for i in range(self.m.to_send)])
        out = _drain(self.m)
        for f in out:
            if f[4] == RELEASE:
                self.sent += 1
                self.most_ahead = max(self.most_ahead, self.sent - self.answered)
        return out

    def deliver(self, f: bytes) -> None:
        for event in self.m.receive(f):
            if isinstance(event, ReleaseReceived):
                self.received.append(event.data)
                self.m.answer(True, b"receipt")
                self.answered += 1


def _run(a: _Side, b: _Side, rng: random.Random) -> None:
    """Deliver frames one at a time, each link in order, the next link chosen by ``rng``."""
    links: dict[str, deque[bytes]] = {a.name: deque(), b.name: deque()}  # frames *to* a side
    sides = {a.name: a, b.name: b}
    other = {a.name: b.name, b.name: a.name}
    for _ in range(100_000):
        for side in (a, b):
            links[other[side.name]].extend(side.step())
        ready = [name for name, q in links.items() if q]
        if not ready:
            break
        name = rng.choice(ready)
        sides[name].deliver(links[name].popleft())
    assert a.m.state is TransferState.DONE and b.m.state is TransferState.DONE


@settings(max_examples=60, deadline=None)
@given(
    ours=st.integers(0, DECIDED),
    theirs=st.integers(0, DECIDED),
    seed=st.integers(0, 2**32 - 1),
)
def test_each_side_sends_the_fewer_offer_and_is_never_more_than_w_ahead(
    ours: int, theirs: int, seed: int
) -> None:
    a = _Side("a", Role.INITIATOR, ours)
    b = _Side("b", Role.RESPONDER, theirs)
    _run(a, b, random.Random(seed))
    n = min(ours, theirs)
    assert a.received == [_body("b", i) for i in range(n)]
    assert b.received == [_body("a", i) for i in range(n)]
    assert a.sent == b.sent == n
    assert a.most_ahead <= W and b.most_ahead <= W
    assert a.m.result is not None and len(a.m.result.answers) == n


def test_offers_counted_says_both_offers() -> None:
    m = _machine(Role.INITIATOR)
    m.offer(12)
    assert _drain(m) == [frame(COUNT, u32(12))]
    assert m.state is TransferState.OFFERING
    assert m.receive(frame(COUNT, u32(5))) == [OffersCounted(12, 5, 5)]
    assert m.state is TransferState.COUNTED and m.to_send == 5


def _counted(ours: int, theirs: int) -> ReleaseTransfer:
    m = _machine(Role.INITIATOR)
    m.offer(ours)
    _drain(m)
    m.receive(frame(COUNT, u32(theirs)))
    return m


def test_a_peer_that_offers_none_gets_none() -> None:
    m = _counted(30, 0)
    assert m.to_send == 0
    m.send_releases([])
    assert _drain(m) == [frame(END)]  # no release, not even one ahead
    m.receive(frame(END))
    assert _drain(m) == [frame(RECEIPTS_END, u32(0))]
    (done,) = m.receive(frame(RECEIPTS_END, u32(0)))
    assert isinstance(done, TransferComplete) and m.state is TransferState.DONE


def test_a_peer_that_offers_and_then_sends_nothing_gets_w() -> None:
    m = _counted(30, 30)
    m.send_releases([_body("a", i) for i in range(30)])
    out = _drain(m)
    assert out == [frame(RELEASE, _body("a", i)) for i in range(W)]
    # each release of the peer's answered lets one more of ours go, and the receipt with it
    for i in range(3):
        m.receive(frame(RELEASE, _body("b", i)))
        m.answer(True, b"receipt")
        assert _drain(m) == [frame(RELEASE, _body("a", W + i)), frame(RECEIPT, b"receipt")]


def test_a_copy_credited_before_opens_no_window_and_is_still_receipted() -> None:
    """A release of the peer's whose copy our store credited once already (§10.5) is
    receipted, so an honest peer after a second lost receipt learns we hold it, but opens no
    window: sent again and again it would otherwise buy a new release of ours each time
    (found in review). Our receipts leave while the window holds our releases."""
    m = _counted(30, 30)
    m.send_releases([_body("a", i) for i in range(30)])
    assert len(_drain(m)) == W
    for i in range(10):
        m.receive(frame(RELEASE, _body("b", i)))
        m.answer(True, b"copy receipt", credit=False)
        assert _drain(m) == [frame(RECEIPT, b"copy receipt")]  # no release of ours
    m.receive(frame(RELEASE, _body("b", 10)))
    m.answer(True, b"receipt")
    assert _drain(m) == [frame(RELEASE, _body("a", W)), frame(RECEIPT, b"receipt")]


class _Gate:
    """A connection that keeps what the outbox sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, message: bytes) -> None:
        self.sent.append(message)

    async def settle(self, box: Outbox) -> list[int]:
        """The kinds of the frames ``box`` sent once woken and left to run a little."""
        box.wake()
        for _ in range(5):
            await asyncio.sleep(0)
        kinds = [f[4] for f in self.sent]
        self.sent.clear()
        return kinds


def test_a_receipt_waiting_for_its_commit_holds_back_none_of_our_releases() -> None:
    """The driver's outbox lets an answer leave only once what it wrote is durable. A receipt
    given while the window was shut must not hold back the release a later credit lets go
    (found in review: it waited for the next commit)."""
    m = _counted(30, 30)
    m.send_releases([_body("a", i) for i in range(30)])
    gate = _Gate()

    async def scenario() -> None:
        box = Outbox(cast(Any, gate), m, gated=True)
        try:
            assert await gate.settle(box) == [RELEASE] * W
            for i in range(2):  # credited, not yet committed
                m.receive(frame(RELEASE, _body("b", i)))
                m.answer(True, b"receipt %d" % i)
                assert await gate.settle(box) == [RELEASE]  # at once, the receipt held
            box.commit(2)
            assert await gate.settle(box) == [RECEIPT, RECEIPT]
        finally:
            await box.close()

    asyncio.run(scenario())


def test_a_carried_window_lets_out_only_what_it_allows_and_only_once_committed() -> None:
    """A window that writes what it lets out to a ledger (an agency's, carried over every
    exchange with the partner: here already 5 ahead of it) paces the machine, asked after each
    crediting answer only; the outbox lets a release it allows leave only once the driver
    committed (the ledger's write is durable before the release can have left)."""
    asked: list[int] = []

    class Ledger:
        def allowed(self, credited: int) -> int:
            asked.append(credited)
            return max(W - 5 + credited, 0)

    m = _counted(30, 30)
    m.send_releases([_body("a", i) for i in range(30)], window=Ledger())
    gate = _Gate()

    async def scenario() -> None:
        box = Outbox(cast(Any, gate), m, gated=True, releases_gated=True)
        try:
            assert await gate.settle(box) == [RELEASE] * (W - 5)
            m.receive(frame(RELEASE, _body("b", 0)))
            m.answer(True, b"receipt 0")  # credits: one more allowed, not yet committed
            assert await gate.settle(box) == []
            box.commit(1)
            assert await gate.settle(box) == [RELEASE, RECEIPT]
            m.receive(frame(RELEASE, _body("b", 1)))
            m.answer(True, b"receipt 1", credit=False)  # a copy credited before
            box.commit(2)
            assert await gate.settle(box) == [RECEIPT]
        finally:
            await box.close()

    asyncio.run(scenario())
    assert asked == [0, 1]


@settings(max_examples=60, deadline=None)
@given(
    credits=st.lists(st.booleans(), min_size=DECIDED, max_size=DECIDED),
    seed=st.integers(0, 2**32 - 1),
)
def test_never_more_than_w_ahead_of_what_credits_and_every_answer_leaves(
    credits: list[bool], seed: int
) -> None:
    """Side ``a`` credits the peer's ``i``-th release only where ``credits[i]``: in every
    delivery order it never has more than W releases out beyond those credited, and every
    answer it gave reaches the peer even where its window stays shut (a transfer of copies
    stalls until the idle timeout; the peer must have learned we hold them by then)."""

    class _Crediting(_Side):
        def __init__(self) -> None:
            super().__init__("a", Role.INITIATOR, DECIDED)
            self.credited = 0

        def step(self) -> list[bytes]:
            out = super().step()
            assert self.sent <= self.credited + W
            return out

        def deliver(self, f: bytes) -> None:
            for event in self.m.receive(f):
                if isinstance(event, ReleaseReceived):
                    credit = credits[event.index]
                    self.m.answer(True, b"receipt", credit=credit)
                    self.answered += 1
                    self.credited += credit

    a, b = _Crediting(), _Side("b", Role.RESPONDER, DECIDED)
    links: dict[str, deque[bytes]] = {"a": deque(), "b": deque()}
    rng = random.Random(seed)
    receipts_at_b = 0
    for _ in range(100_000):
        links["b"].extend(a.step())
        links["a"].extend(b.step())
        ready = [name for name, q in links.items() if q]
        if not ready:
            break
        name = rng.choice(ready)
        f = links[name].popleft()
        if name == "b" and f[4] == RECEIPT:
            receipts_at_b += 1
        (a if name == "a" else b).deliver(f)
    assert receipts_at_b == a.answered  # nothing of ours stuck behind a shut window
    # and each side sends all its window allows: nothing waits that could go
    assert a.sent == min(DECIDED, a.credited + W)
    assert b.sent == min(DECIDED, a.sent + W)
    assert (a.m.state is TransferState.DONE) == (a.sent == b.sent == DECIDED)


def test_a_refusal_ends_the_transfer_and_opens_no_window() -> None:
    """A release we refuse, even for the peer's clock, ends a reciprocal transfer: counted as
    an answer, a partner that dated its releases ahead would have had every one of ours for
    releases we never keep (found in review). Nothing more leaves, not even the refusal."""
    m = _counted(30, 30)
    m.send_releases([_body("a", i) for i in range(30)])
    assert len(_drain(m)) == W
    m.receive(frame(RELEASE, _body("b", 0)))
    with pytest.raises(BadRelease) as info:
        m.answer(False, b"created-in-future")
    assert (info.value.code, info.value.reason) == (AbortCode.BAD_RELEASE, "created-in-future")
    assert m.state is TransferState.ABORTED and m.next_frame() is None


def test_a_refusal_from_the_peer_is_unexpected() -> None:
    """Under §10.5 a side never refuses: it ends the transfer. A REFUSED is off the rules."""
    m = _counted(3, 3)
    m.send_releases([b"a", b"b", b"c"])
    _drain(m)
    with pytest.raises(TransferError) as info:
        m.receive(frame(REFUSED, b"created-in-future"))
    assert info.value.code is AbortCode.UNEXPECTED_MESSAGE


@pytest.mark.parametrize(
    "peer_frames",
    [
        # the peer sends more releases than the fewer offer
        [frame(RELEASE, b"1"), frame(RELEASE, b"2"), frame(RELEASE, b"3")],
        # END before the fewer offer's releases
        [frame(RELEASE, b"1"), frame(END)],
        # a second COUNT
        [frame(COUNT, u32(2))],
    ],
)
def test_a_peer_off_the_count_aborts(peer_frames: list[bytes]) -> None:
    m = _counted(2, 9)  # two releases each way
    m.send_releases([b"a", b"b"])
    _drain(m)
    with pytest.raises(TransferError) as info:
        for f in peer_frames:
            for event in m.receive(f):
                if isinstance(event, ReleaseReceived):
                    m.answer(True, b"receipt")
    assert info.value.code is AbortCode.UNEXPECTED_MESSAGE
    assert m.state is TransferState.ABORTED and m.next_frame() is None


def test_the_offer_is_the_peers_first_frame() -> None:
    m = _machine(Role.INITIATOR)
    m.offer(3)
    _drain(m)
    with pytest.raises(TransferError) as info:
        m.receive(frame(RELEASE, b"early"))
    assert info.value.code is AbortCode.UNEXPECTED_MESSAGE


def test_an_offer_above_our_decided_matches_aborts() -> None:
    m = _machine(Role.INITIATOR)
    m.offer(3)
    _drain(m)
    with pytest.raises(TransferError) as info:
        m.receive(frame(COUNT, u32(DECIDED + 1)))
    assert info.value.code is AbortCode.TOO_MANY_RELEASES


def test_local_misuse_changes_nothing() -> None:
    plain = ReleaseTransfer(SID, PAIRS, role=Role.INITIATOR)
    with pytest.raises(LocalProtocolError):
        plain.offer(1)  # not a reciprocal transfer
    m = _machine(Role.INITIATOR)
    with pytest.raises(LocalProtocolError):
        m.send_releases([b"a"])  # offer first
    with pytest.raises(LocalProtocolError):
        m.offer(DECIDED + 1)
    assert m.state is TransferState.AGREED
    m.offer(3)
    _drain(m)
    with pytest.raises(LocalProtocolError):
        m.send_releases([b"a"])  # the peer's offer is not in yet
    m.receive(frame(COUNT, u32(2)))
    with pytest.raises(LocalProtocolError):
        m.send_releases([b"a", b"b", b"c"])  # two are due
    with pytest.raises(LocalProtocolError):
        m.receive(frame(RELEASE, b"x"))  # COUNTED waits for the caller
    m.send_releases([b"a", b"b"])
    assert m.state is TransferState.RELEASING


def test_receipts_answer_the_fewer_offer() -> None:
    m = _counted(1, 1)
    m.send_releases([b"a"])
    assert _drain(m) == [frame(RELEASE, b"a"), frame(END)]
    m.receive(frame(RELEASE, b"b"))
    m.answer(True, b"receipt")
    m.receive(frame(END))
    m.receive(frame(RECEIPT, b"their receipt"))
    assert _drain(m) == [frame(RECEIPT, b"receipt"), frame(RECEIPTS_END, u32(1))]
    (done,) = m.receive(frame(RECEIPTS_END, u32(1)))
    assert isinstance(done, TransferComplete)


@pytest.mark.parametrize(("ours", "theirs"), [(30, 20), (0, 12), (25, 25)])
def test_two_drivers_over_a_narrow_connection_send_the_fewer_offer(ours: int, theirs: int) -> None:
    """The async driver (``run_transfer``) on both sides of a connection that holds two
    frames: the pacing never leaves both sides waiting for each other."""
    n = min(ours, theirs)

    async def side(conn: MemoryConnection, role: Role, who: str, offer: int) -> TransferResult:
        gate = TransferGate(conn)
        machine = ReleaseTransfer(SID, PAIRS, role=role, reciprocal=True)
        try:
            return await run_transfer(
                gate,
                machine,
                labels=None,
                releases=lambda _outputs: [_body(who, i) for i in range(offer)],
                store_one=lambda data: (True, b"receipt:" + data[:8]),
                idle_timeout=5.0,
            )
        finally:
            await conn.close()

    async def scenario() -> list[TransferResult]:
        x, y = memory_pair(capacity=2)
        return await asyncio.wait_for(
            asyncio.gather(
                side(x, Role.INITIATOR, "a", ours), side(y, Role.RESPONDER, "b", theirs)
            ),
            30,
        )

    a, b = asyncio.run(scenario())
    assert a.peer_releases == b.peer_releases == n
    assert len(a.answers) == len(b.answers) == n  # each of ours answered, none beyond
