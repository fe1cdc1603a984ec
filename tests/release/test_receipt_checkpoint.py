"""Receipts version 2 carry the recipient's audit checkpoint (xlink-release-v1 §8); the
originator settles each as it arrives, keeping the receipt and the checkpoint."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from _release_support import CA, MOU, SEALING, SESSION, SIGNING, T0, US, release_record
from hypothesis import given, settings
from hypothesis import strategies as st

from xlink.audit import AuditEvent, AuditLog, Checkpoint, PublishedCheckpoint, verify_log
from xlink.crypto.keys import SigningKey
from xlink.errors import DecryptionError, XlinkError
from xlink.release import (
    ReceiptSettler,
    ReleaseBatch,
    ReleaseRecord,
    ReleaseRejected,
    SealedRelease,
    issue_receipt,
    receive_release,
    seal_release,
    sign_release,
    verify_receipt,
)

AUDIT = {
    agency: SigningKey(hashlib.sha256(f"receipt-test/{agency}".encode()).digest())
    for agency in (CA, US)
}
OTHER_AUDIT = SigningKey(hashlib.sha256(b"receipt-test/other").digest())


def _record(n: int = 1) -> ReleaseRecord:
    return release_record(release_id=bytes([n]) * 16)


def _sealed(n: int = 1) -> SealedRelease:
    return seal_release(sign_release(_record(n), SIGNING[CA]), MOU)


def _published(
    seq: int = 5, key: SigningKey = AUDIT[US], time: datetime = T0
) -> PublishedCheckpoint:
    unsigned = Checkpoint(seq, bytes([seq]) * 32, time, seq - 1, 100, b"")
    signed = dataclasses.replace(unsigned, signature=key.sign(unsigned.message()))
    return PublishedCheckpoint(AUDIT[US].verify_key, signed)


def test_receive_release_carries_the_recipients_checkpoint(tmp_path: Path) -> None:
    """The checkpoint is signed just before the receipt: it covers every entry before this
    release's RELEASE_RECEIVED and RECEIPT_SENT (spec §8.3)."""
    sealed = _sealed()
    with AuditLog.open(tmp_path / "us.db", signing_key=AUDIT[US]) as log:
        log.append(AuditEvent.SESSION_COMPLETED, {"session": SESSION}, now=T0)
        _, receipt = receive_release(
            sealed.data,
            mou=MOU,
            sealing_key=SEALING[US],
            signing_key=SIGNING[US],
            expected_session_id=SESSION,
            now=T0,
            audit=log,
        )
        kinds = [e.kind for e in log.entries()]
    got = verify_receipt(receipt, mou=MOU, release=sealed)
    assert got.checkpoint is not None
    assert got.checkpoint.audit_key == AUDIT[US].verify_key
    assert got.checkpoint.checkpoint.seq == 1  # the entry before the receipt's own
    assert kinds == [
        AuditEvent.SESSION_COMPLETED,
        AuditEvent.RELEASE_RECEIVED,
        AuditEvent.RECEIPT_SENT,
    ]


def test_a_receipt_without_an_audit_log_carries_none() -> None:
    sealed = _sealed()
    _, receipt = receive_release(
        sealed.data,
        mou=MOU,
        sealing_key=SEALING[US],
        signing_key=SIGNING[US],
        expected_session_id=SESSION,
        now=T0,
    )
    assert verify_receipt(receipt, mou=MOU, release=sealed).checkpoint is None


def test_issue_receipt_refuses_a_checkpoint_that_does_not_verify() -> None:
    record = release_record()
    with pytest.raises(ValueError, match="does not verify"):
        issue_receipt(record, SIGNING[US], now=T0, checkpoint=_published(key=OTHER_AUDIT))


def test_a_forged_checkpoint_makes_the_receipt_invalid() -> None:
    """A receipt signed by the recipient whose checkpoint the embedded audit key did not sign
    is refused (DecryptionError), so it is never settled as delivered."""
    sealed = _sealed()
    good = issue_receipt(_record(), SIGNING[US], now=T0, checkpoint=_published())
    forged_cp = _published(key=OTHER_AUDIT)
    # Re-sign the body with the forged checkpoint inside (the recipient itself lying).
    from xlink.release.codec import lp, pack
    from xlink.release.receipt import DST_RECEIPT, RECEIPT_VERSION

    cp, t0_us = forged_cp.checkpoint, int(T0.timestamp()) * 1_000_000
    wire = [bytes(forged_cp.audit_key), cp.seq, cp.head_hash, t0_us]
    wire += [cp.prev_seq, cp.interval, cp.signature]
    members: list[object] = [sealed.release_id, sealed.session_id, sealed.digest, CA, US]
    members += [t0_us, wire]
    body = pack(members, version=RECEIPT_VERSION)
    signature = SIGNING[US].sign(hashlib.sha256(lp(DST_RECEIPT) + body).digest())
    forged = pack([body, signature], version=RECEIPT_VERSION)
    assert verify_receipt(good, mou=MOU, release=sealed).checkpoint == _published()
    with pytest.raises(DecryptionError):
        verify_receipt(forged, mou=MOU, release=sealed)


def test_a_version_1_receipt_is_unsupported() -> None:
    from xlink.release.codec import lp, pack
    from xlink.release.receipt import DST_RECEIPT

    sealed = _sealed()
    body = pack([sealed.release_id, sealed.session_id, sealed.digest, CA, US, 0])
    v1 = pack([body, SIGNING[US].sign(hashlib.sha256(lp(DST_RECEIPT) + body).digest())])
    with pytest.raises(ReleaseRejected) as exc:
        verify_receipt(v1, mou=MOU, release=sealed)
    assert exc.value.reason == "unsupported-version"


_RECEIPT = issue_receipt(_record(), SIGNING[US], now=T0, checkpoint=_published())
_SEALED = _sealed()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_receipts_raise_only_xlink_errors(data: st.DataObject) -> None:
    """Any byte of a v2 receipt changed, cut or appended: verify_receipt raises only xlink's
    own errors (ReleaseRejected, DecryptionError), never a decoder's."""
    receipt = bytearray(_RECEIPT)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(receipt) - 1))
        receipt[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(receipt)))
    tail = data.draw(st.binary(max_size=8))
    with contextlib.suppress(XlinkError):
        verify_receipt(bytes(receipt[:cut]) + tail, mou=MOU, release=_SEALED)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_as_a_receipt_raise_only_xlink_errors(data: bytes) -> None:
    with contextlib.suppress(XlinkError):
        verify_receipt(b"\x02" + data, mou=MOU, release=_SEALED)


def _batch(sealed: list[SealedRelease]) -> ReleaseBatch:
    return ReleaseBatch(tuple(sealed), (), (), (), (None,) * len(sealed))


def test_settler_audits_each_receipt_as_it_arrives_and_keeps_its_checkpoint(
    tmp_path: Path,
) -> None:
    """Each answer is settled when it arrives (RECEIPT_RECEIVED, then CHECKPOINT_RECEIVED
    countersigning the recipient's checkpoint in our chain); finish() settles only what was
    not, and a second answer for one release is refused."""
    first, second = _sealed(1), _sealed(2)
    receipts = [
        issue_receipt(
            release_record(release_id=bytes([n]) * 16),
            SIGNING[US],
            now=T0,
            checkpoint=_published(seq),
        )
        for n, seq in ((1, 5), (2, 7))
    ]
    path = tmp_path / "ca.db"
    with AuditLog.open(path, signing_key=AUDIT[CA]) as log:
        settler = ReceiptSettler(_batch([first, second]), mou=MOU, clock=lambda: T0, audit=log)
        settler.settle(0, True, receipts[0])
        assert [e.kind for e in log.entries()] == [
            AuditEvent.RECEIPT_RECEIVED,
            AuditEvent.CHECKPOINT_RECEIVED,
        ]
        with pytest.raises(ValueError):
            settler.settle(0, True, receipts[0])
        assert settler.finish([(True, receipts[0]), (True, receipts[1])]) == (2, 0)
        kept = log.partner_checkpoints(US)
        (entry,) = [e for e in log.entries() if e.kind is AuditEvent.CHECKPOINT_RECEIVED][:1]
    assert [p.checkpoint.seq for p in kept] == [5, 7]
    assert entry.fields["peer"] == US and entry.fields["seq"] == 5
    assert entry.fields["fingerprint"] == AUDIT[US].verify_key.fingerprint()
    assert entry.fields["handle"] == first.release_id.hex()
    assert verify_log(path, AUDIT[CA].verify_key).ok


def test_a_receipt_dated_after_it_could_have_been_given_is_not_a_delivery(
    tmp_path: Path,
) -> None:
    """A partner dated its receipt, or the checkpoint in it, in the year 9999: it verified and
    settled the release as delivered. More than an hour after our clock: RECEIPT_INVALID, the
    release offered again; a clock half an hour ahead is taken."""
    later = T0 + timedelta(hours=2)
    cases = {
        "received_at": issue_receipt(_record(1), SIGNING[US], now=later, checkpoint=_published()),
        "checkpoint": issue_receipt(
            _record(2),
            SIGNING[US],
            now=T0,
            checkpoint=_published(key=AUDIT[US], time=later),
        ),
        "half an hour": issue_receipt(
            _record(3), SIGNING[US], now=T0 + timedelta(minutes=30), checkpoint=_published()
        ),
    }
    for n, receipt in enumerate(cases.values(), start=1):
        with (
            pytest.raises(ReleaseRejected, match="received-in-future")
            if n < 3
            else (contextlib.nullcontext())
        ):
            verify_receipt(receipt, mou=MOU, release=_sealed(n), now=T0)
        verify_receipt(receipt, mou=MOU, release=_sealed(n))  # without a clock: not checked
    with AuditLog.open(tmp_path / "ca.db", signing_key=AUDIT[CA]) as log:
        settler = ReceiptSettler(
            _batch([_sealed(n) for n in (1, 2, 3)]), mou=MOU, clock=lambda: T0, audit=log
        )
        assert settler.finish([(True, r) for r in cases.values()]) == (1, 0)
        kinds = [e.kind for e in log.entries()]
    assert kinds.count(AuditEvent.RECEIPT_INVALID) == 2
    assert kinds.count(AuditEvent.RECEIPT_RECEIVED) == 1
