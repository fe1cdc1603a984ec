"""Batched commits in release transfer v3 (``transfer_releases(batch=...)``, as every exchange
runs it): the peer's releases are stored and audited in few commits, a RECEIPT or REFUSED
leaves only once what it vouches for is committed, and what was done before a failure stays
done (xlink-release-v1 §10, §10.4)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "store"))

from _store_support import AUDIT_KEY, SESSION, T0, make_record, open_store, seal  # noqa: E402

from xlink._sqlite import Batch  # noqa: E402
from xlink.audit import AuditLog, verify_log  # noqa: E402
from xlink.errors import XlinkError  # noqa: E402
from xlink.protocol.config import Role  # noqa: E402
from xlink.release.seal import SealedRelease  # noqa: E402
from xlink.release.transfer import FrameType, decided_pairs_digest, transfer_frame  # noqa: E402
from xlink.store.store import DecidedMatches  # noqa: E402
from xlink.transport import MemoryConnection, memory_pair  # noqa: E402
from xlink.transport.release_transfer import (  # noqa: E402
    TransferError,
    TransferGate,
    TransferResult,
    agree_decided_pairs,
    transfer_releases,
)

TIMEOUT = 10.0
ANSWERS = (FrameType.RECEIPT, FrameType.REFUSED)


def _pairs(n: int) -> list[tuple[bytes, ...]]:
    return [(bytes([i + 1]) * 16,) for i in range(n)]


class CountingBatch(Batch):
    flushes = 0

    def flush(self) -> None:
        self.flushes += self.is_open
        super().flush()


def _committed(directory: Path) -> tuple[int, int]:
    """(releases stored, RECEIPT_SENT entries) as another connection sees them: committed."""
    counts = []
    for db, sql in (
        ("store.db", "SELECT COUNT(*) FROM releases"),
        ("audit.db", "SELECT COUNT(*) FROM audit_entries WHERE kind = 'RECEIPT_SENT'"),
    ):
        conn = sqlite3.connect(f"file:{directory / db}?mode=ro", uri=True)
        try:
            counts.append(int(conn.execute(sql).fetchone()[0]))
        finally:
            conn.close()
    return counts[0], counts[1]


def _receive(
    directory: Path, decided: Sequence[tuple[bytes, ...]], partner_frames: Sequence[bytes]
) -> tuple[TransferResult | BaseException, list[tuple[int, int]], int]:
    """US-DHS receives ``partner_frames`` (sent at once by a partner that then closes) with a
    batch over its audit log and store; returns its outcome, what was committed as each of its
    answers left, and how many commits the batch made."""
    sent_at: list[tuple[int, int]] = []
    with (
        AuditLog.open(directory / "audit.db", signing_key=AUDIT_KEY) as audit,
        open_store(directory / "store.db", audit=audit) as store,
    ):
        expected = DecidedMatches(decided)
        batch = CountingBatch(audit, store)

        def store_one(data: bytes) -> tuple[bool, bytes]:
            try:
                receipt = store.receive(
                    data, expected_session_id=SESSION, now=T0, expected_matches=expected
                )
            except XlinkError:
                return False, b"refused"
            return True, receipt

        async def us(conn: MemoryConnection) -> TransferResult:
            gate = TransferGate(conn)
            send = gate.send

            async def watched(message: bytes) -> None:
                if message[4] in ANSWERS:
                    sent_at.append(_committed(directory))
                await send(message)

            gate.send = watched  # type: ignore[method-assign]
            try:
                await agree_decided_pairs(gate, SESSION, decided, TIMEOUT, role=Role.RESPONDER)
                return await transfer_releases(gate, [], store_one, TIMEOUT, batch=batch)
            finally:
                await conn.close(1.0)

        async def partner(conn: MemoryConnection) -> None:
            our_end = asyncio.Event()

            async def read() -> None:
                while (message := await conn.receive()) is not None:
                    if message == transfer_frame(FrameType.END):
                        our_end.set()
                our_end.set()

            reading = asyncio.create_task(read())
            for f in partner_frames:
                if f[:5] == transfer_frame(FrameType.RECEIPTS_END):
                    await our_end.wait()  # it answers our END (§10), as a peer's does
                await conn.send(f)
            await conn.close(1.0)
            await reading

        async def scenario() -> TransferResult | BaseException:
            ours, theirs = memory_pair(capacity=8)
            got = await asyncio.wait_for(
                asyncio.gather(us(ours), partner(theirs), return_exceptions=True), 4 * TIMEOUT
            )
            return got[0]

        outcome = asyncio.run(scenario())
    assert verify_log(directory / "audit.db", AUDIT_KEY.verify_key).ok
    return outcome, sent_at, batch.flushes


def _frames(decided: Sequence[tuple[bytes, ...]], releases: Sequence[SealedRelease]) -> list[bytes]:
    u32 = len(releases).to_bytes(4, "big")
    return [
        transfer_frame(
            FrameType.DIGEST, decided_pairs_digest(SESSION, decided, sender=Role.INITIATOR)
        ),
        transfer_frame(FrameType.COUNT, u32),
        *(transfer_frame(FrameType.RELEASE, s.data) for s in releases),
        transfer_frame(FrameType.END),
        transfer_frame(FrameType.RECEIPTS_END, (0).to_bytes(4, "big")),
    ]


def test_each_receipt_leaves_only_once_its_release_is_committed(scratch: Path) -> None:
    decided = _pairs(40)
    releases = [seal(make_record(i, match_handles=p)) for i, p in enumerate(decided)]
    # One release for a pair we did not decide: refused, and its refusal is audited first.
    stray = seal(make_record(99, match_handles=(b"\xee" * 16,)))
    frames = _frames(decided, [*releases[:20], stray, *releases[20:39]])
    outcome, sent_at, flushes = _receive(scratch, decided, frames)
    assert isinstance(outcome, TransferResult), outcome
    assert len(sent_at) == 40
    receipts = 0
    for k, (stored, receipted) in enumerate(sent_at):
        receipts += k != 20  # the refusal is the 21st answer
        assert stored >= receipts and receipted >= receipts, (k, stored, receipted)
    assert _committed(scratch) == (39, 39)
    assert 1 <= flushes < 40


def test_what_was_stored_before_a_failure_stays_committed(scratch: Path) -> None:
    """The partner announces five releases, sends three and hangs up: the transfer fails, no
    answer leaves, and the three stay stored and audited (the next exchange sends them again,
    and they are receipted without being stored twice: §10.4)."""
    decided = _pairs(5)
    releases = [seal(make_record(i, match_handles=p)) for i, p in enumerate(decided)]
    frames = _frames(decided, releases)[:5]  # DIGEST, COUNT, three releases
    outcome, sent_at, _ = _receive(scratch, decided, frames)
    assert isinstance(outcome, TransferError), outcome
    assert sent_at == []
    assert _committed(scratch) == (3, 3)
