"""Sign, seal, open and acknowledge; and every refusal of the recipient (spec §7, §8)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _release_support import (
    CA,
    HANDLES,
    MOU,
    OTHER_SEALING,
    OTHER_SIGNING,
    SEALING,
    SESSION,
    SIGNING,
    T0,
    US,
    person,
    release_record,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xlink.audit import Checkpoint, PublishedCheckpoint
from xlink.crypto.keys import SigningKey
from xlink.errors import DecryptionError, PolicyDenied, XlinkError
from xlink.records.model import Category
from xlink.release import (
    ReleaseRecord,
    ReleaseRejected,
    SealedRelease,
    decode_release,
    decode_signed_release,
    encode_release,
    issue_receipt,
    match_for,
    open_release,
    seal_release,
    sign_release,
    verify_receipt,
)
from xlink.release.codec import lp, pack
from xlink.release.receipt import DST_RECEIPT, RECEIPT_VERSION

AUDIT_KEY = SigningKey(hashlib.sha256(b"test-release-open/audit-key").digest())


def _checkpoint(seq: int = 3) -> PublishedCheckpoint:
    """A checkpoint of the recipient's audit log, signed by its audit key (spec §8)."""
    unsigned = Checkpoint(seq, bytes([seq]) * 32, T0, seq - 1, 100, b"")
    signed = dataclasses.replace(unsigned, signature=AUDIT_KEY.sign(unsigned.message()))
    return PublishedCheckpoint(AUDIT_KEY.verify_key, signed)


def _sealed(record: ReleaseRecord, key: SigningKey | None = None) -> SealedRelease:
    signer = key if key is not None else SIGNING[record.originator]
    return seal_release(sign_release(record, signer), MOU)


def _seal_raw(envelope: bytes, to: str = US) -> bytes:
    return MOU.party(to).sealing_key.seal(envelope)


def _open(data: bytes | SealedRelease, *, session: bytes = SESSION) -> ReleaseRecord:
    return open_release(data, SEALING[US], mou=MOU, expected_session_id=session)


def test_round_trip_and_receipt() -> None:
    record = release_record()
    sealed = _sealed(record)
    assert sealed.recipient == US and sealed.originator == CA
    opened = _open(sealed.data)
    assert opened == record
    assert encode_release(opened) == encode_release(record)
    receipt = issue_receipt(opened, SIGNING[US], now=T0, checkpoint=_checkpoint())
    got = verify_receipt(receipt, mou=MOU, release=sealed)
    assert got.release_digest == sealed.digest and got.received_at == T0
    assert got.checkpoint == _checkpoint()
    # Sealed bytes carry nothing in the clear; each sealing differs.
    assert b"RCMP" not in sealed.data and b"Grzegorz" not in sealed.data
    assert _sealed(record).data != sealed.data


def test_receipt_refusals() -> None:
    record = release_record()
    sealed = _sealed(record)
    other = _sealed(release_record(release_id=b"\x09" * 16))
    receipt = issue_receipt(record, SIGNING[US], now=T0, checkpoint=_checkpoint())
    with pytest.raises(ReleaseRejected) as exc:
        verify_receipt(receipt, mou=MOU, release=other)
    assert exc.value.reason == "wrong-release"
    with pytest.raises(DecryptionError):
        forged = issue_receipt(record, OTHER_SIGNING, now=T0, checkpoint=_checkpoint())
        verify_receipt(forged, mou=MOU, release=sealed)
    for bad in (receipt[:-1], receipt + b"\x00", b"", b"\x01" + receipt[1:]):
        with pytest.raises(ReleaseRejected):
            verify_receipt(bad, mou=MOU, release=sealed)


def test_match_for_finds_the_recipients_own_pair() -> None:
    from xlink.decide import DecidedMatch

    mine = DecidedMatch("USWL-7", 3, frozenset({"k"}), 30.0, tuple(reversed(HANDLES)))
    other = DecidedMatch("USWL-8", 4, frozenset({"k"}), 30.0, (b"\x07" * 16,))
    # One record in two decided pairs (a person listed twice on one side) shares a handle with
    # both: only the pair with exactly the release's handles is the release's.
    twin = DecidedMatch("USWL-9", 5, frozenset({"k"}), 30.0, (HANDLES[1],))
    assert match_for(release_record(), [other, twin, mine]) is mine
    assert match_for(release_record(), [other, twin]) is None


def test_not_sealed_to_us() -> None:
    sealed = _sealed(release_record())
    with pytest.raises(DecryptionError):
        open_release(sealed, SEALING[CA], mou=MOU, expected_session_id=SESSION)
    with pytest.raises(ValueError):
        open_release(sealed, OTHER_SEALING, mou=MOU, expected_session_id=SESSION)


def test_wrong_signature() -> None:
    with pytest.raises(DecryptionError):
        _open(_sealed(release_record(), OTHER_SIGNING))
    signed = sign_release(release_record(), SIGNING[CA])
    flipped = bytearray(signed.signature)
    flipped[0] ^= 1
    with pytest.raises(DecryptionError):
        _open(_seal_raw(pack([signed.encoded, bytes(flipped)])))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"originator": "XX-OTHER"}, "wrong-originator"),
        ({"recipient": "XX-OTHER"}, "wrong-recipient"),
        ({"mou_digest": b"\x00" * 32}, "mou-mismatch"),
        ({"mou_id": "ANOTHER-MOU"}, "mou-mismatch"),
        ({"session_id": b"\x00" * 16}, "wrong-session"),
    ],
)
def test_binding_refusals(changes: dict[str, Any], reason: str) -> None:
    record = release_record(**changes)
    signed = sign_release(record, SIGNING[CA])  # validly signed by the real peer
    with pytest.raises(ReleaseRejected) as exc:
        _open(_seal_raw(signed.to_bytes()))
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"category": Category.OTHER}, ("category-not-allowed",)),
        ({"fields": {"family_name": ("X",), "payload.remarks": ("secret",)}}, None),
        ({"fields": {"payload.source_id": ("RCMP-SRC-1",)}}, ("field-not-allowed",)),
        ({"fields": {"sex": ("M",)}}, ("field-not-allowed",)),
        ({"grading": None}, ("grading-missing",)),
        (
            {
                "caveats": dataclasses.replace(
                    MOU.categories[0].caveats, tlp=MOU.categories[1].caveats.tlp
                )
            },
            ("caveats-mismatch",),
        ),
    ],
)
def test_policy_refusals(changes: dict[str, Any], reasons: tuple[str, ...] | None) -> None:
    record = release_record(**changes)
    with pytest.raises(PolicyDenied) as exc:
        _open(_seal_raw(sign_release(record, SIGNING[CA]).to_bytes()))
    assert exc.value.reasons == (reasons or ("field-not-allowed",))


def test_grading_not_allowed_when_not_required() -> None:
    travel = release_record(person(category=Category.TRAVELLER))
    assert travel.grading is None
    _open(_sealed(travel))
    from xlink.records.model import UkGrading

    with pytest.raises(PolicyDenied) as exc:
        _open(_sealed(dataclasses.replace(travel, grading=UkGrading(1, "A"))))
    assert exc.value.reasons == ("grading-not-allowed",)


def test_malformed_envelopes() -> None:
    signed = sign_release(release_record(), SIGNING[CA])
    env = signed.to_bytes()
    cases = {
        "truncated": env[:-1],
        "malformed": env + b"\x00",
        "unsupported-version": b"\x02" + env[1:],
    }
    for reason, data in cases.items():
        with pytest.raises(ReleaseRejected) as exc:
            _open(_seal_raw(data))
        assert exc.value.reason == reason
    # A record that is signed but not canonical (or not a record at all) is refused.
    junk = pack([b"\x01\x90", SIGNING[CA].sign(b"x")])
    with pytest.raises(DecryptionError):
        _open(_seal_raw(junk))


def test_decoder_strictness() -> None:
    encoded = encode_release(release_record())
    assert decode_release(encoded) == release_record()
    for bad in (encoded[:-1], encoded + b"\x00", b"", b"\x01", b"\x01\xc1", b"\x01\x90"):
        with pytest.raises(ReleaseRejected):
            decode_release(bad)
    # Non-canonical: the release id as bin16 instead of bin8 decodes to the same body.
    import msgpack

    assert encoded[1:4] == b"\x9d\xc4\x10"
    wide = encoded[:2] + b"\xc5\x00\x10" + encoded[4:]
    assert msgpack.unpackb(wide[1:], raw=False) == msgpack.unpackb(encoded[1:], raw=False)
    with pytest.raises(ReleaseRejected) as exc:
        decode_release(wide)
    assert exc.value.reason == "malformed"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_xlink_errors(data: bytes) -> None:
    for decode in (decode_release, decode_signed_release):
        with pytest.raises(XlinkError):
            decode(data)
        with pytest.raises(XlinkError):
            decode(b"\x01" + data)
    with pytest.raises(XlinkError):
        _open(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_records_raise_only_xlink_errors(data: st.DataObject) -> None:
    encoded = bytearray(encode_release(release_record()))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(XlinkError):
        decode_release(bytes(encoded))


_LAST_US = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
    microseconds=1
)
_SEALED = _sealed(release_record())


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1))
@example(_LAST_US).via("the last microsecond of year 9999")
@example(_LAST_US + 1).via("past year 9999 (issue 11: an OverflowError)")
@example(2**63 - 1).via("the largest time the wire allows")
def test_signed_receipts_of_any_time_raise_only_xlink_errors(micros: int) -> None:
    """The recipient signs whatever time it likes: a receipt verifies when a ``datetime`` can
    hold its time and is otherwise ``malformed``, never an OverflowError."""
    members = [_SEALED.release_id, _SEALED.session_id, _SEALED.digest, CA, US, micros, None]
    body = pack(members, version=RECEIPT_VERSION)
    signature = SIGNING[US].sign(hashlib.sha256(lp(DST_RECEIPT) + body).digest())
    receipt = pack([body, signature], version=RECEIPT_VERSION)
    if micros <= _LAST_US:
        got = verify_receipt(receipt, mou=MOU, release=_SEALED)
        assert got.received_at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    else:
        with pytest.raises(ReleaseRejected) as exc:
            verify_receipt(receipt, mou=MOU, release=_SEALED)
        assert exc.value.reason == "malformed"
