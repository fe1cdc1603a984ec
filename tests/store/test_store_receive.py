"""Receiving: every check runs before anything is stored, replays are refused, the record is
kept sealed at rest, and the receipt verifies at the originator (issue 4 item 4)."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from _store_support import (
    AUDIT_KEY,
    CA,
    DAY,
    MOU,
    OTHER_SIGNING,
    SEALING,
    SESSION,
    T0,
    US,
    audit_kinds,
    make_record,
    open_store,
    seal,
)

from xlink.agency._inbound import Receiver
from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.crypto.keys import SealingKey
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DecryptionError, PolicyDenied
from xlink.records.model import Category
from xlink.release import ReleaseRejected, verify_receipt
from xlink.release.label import per_handle, seal_labelled
from xlink.store import DENY_EXPIRED, ReleaseReplayed, ReleaseStore
from xlink.store.reasons import DENY_CREATED_IN_FUTURE


def _assert_empty(path: Path, audit: AuditLog) -> None:
    with open_store(path) as store:
        assert store.list(T0) == ()
    assert audit_kinds(audit) == []


def test_receive_stores_and_returns_a_receipt_the_originator_verifies(tmp_path: Path) -> None:
    record = make_record()
    sealed = seal(record)
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store:
            receipt = store.receive(sealed, expected_session_id=SESSION, now=T0)
            assert store.receipt(record.release_id) == receipt
            (meta,) = store.list(T0)
        assert audit_kinds(audit) == [AuditEvent.RELEASE_RECEIVED, AuditEvent.RECEIPT_SENT]
    got = verify_receipt(receipt, mou=MOU, release=sealed)
    assert got.release_id == record.release_id and got.received_at == T0
    assert meta.release_id == record.release_id and meta.session_id == SESSION
    assert meta.category is Category.WATCHLIST and meta.originator == record.originator
    assert meta.received_at == T0
    assert (meta.expires_at - T0).days == record.caveats.retention_days == 365
    assert not meta.expired
    assert verify_log(tmp_path / "audit.db", AUDIT_KEY.verify_key).ok


def test_the_record_is_sealed_at_rest(tmp_path: Path) -> None:
    record = make_record()
    with open_store(tmp_path / "store.db") as store:
        store.receive(seal(record).data, expected_session_id=SESSION, now=T0)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    values = [v.encode() for vs in record.fields.values() for v in vs if len(v) >= 4]
    assert values and not any(v in raw for v in values)
    assert record.release_id in raw  # the index column is there, the content is not


@pytest.mark.parametrize(
    ("make", "error", "reason"),
    [
        (lambda: seal(make_record(), key=OTHER_SIGNING), DecryptionError, None),
        (
            lambda: seal(make_record(mou_id="OTHER-MOU-2026-001")),
            ReleaseRejected,
            "mou-mismatch",
        ),
        (lambda: seal(make_record(mou_digest=b"\x00" * 32)), ReleaseRejected, "mou-mismatch"),
        (lambda: seal(make_record(session_id=b"\x09" * 16)), ReleaseRejected, "wrong-session"),
        (
            lambda: seal(make_record(fields={"family_name": ("X",), "source_id": ("S",)})),
            PolicyDenied,
            None,
        ),
    ],
    ids=["bad-signature", "wrong-mou-id", "wrong-mou-digest", "wrong-session", "source-field"],
)
def test_refused_releases_store_and_audit_nothing(
    tmp_path: Path, make: object, error: type[Exception], reason: str | None
) -> None:
    sealed = make()  # type: ignore[operator]
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store, pytest.raises(error) as exc:
            store.receive(sealed, expected_session_id=SESSION, now=T0)
        if reason is not None:
            assert getattr(exc.value, "reason", None) == reason
        _assert_empty(tmp_path / "store.db", audit)


def test_a_release_sealed_to_someone_else_is_refused(tmp_path: Path) -> None:
    to_ca = make_record(sender=US)  # sealed to CA: the US store cannot open it
    with open_store(tmp_path / "store.db") as store, pytest.raises(DecryptionError):
        store.receive(seal(to_ca), expected_session_id=SESSION, now=T0)


def test_replay_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    sealed = seal(make_record())
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store:
            first = store.receive(sealed, expected_session_id=SESSION, now=T0)
            with pytest.raises(ReleaseReplayed) as exc:
                store.receive(sealed, expected_session_id=SESSION, now=T0)
            assert isinstance(exc.value, ReleaseRejected) and exc.value.reason == "replayed"
            assert len(store.list(T0)) == 1
            assert store.receipt(sealed.release_id) == first
        assert audit_kinds(audit).count(AuditEvent.RELEASE_RECEIVED) == 1


def test_an_audit_failure_rolls_the_store_back(tmp_path: Path) -> None:
    AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY).close()
    with (
        AuditLog.open(tmp_path / "audit.db", signing_key=None) as read_only,
        open_store(tmp_path / "store.db", audit=read_only) as store,
    ):
        with pytest.raises(ValueError, match="read-only"):
            store.receive(seal(make_record()), expected_session_id=SESSION, now=T0)
        assert store.list(T0) == ()


def test_open_checks_the_keys_against_the_mou(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sealing key"):
        ReleaseStore.open(
            tmp_path / "s.db",
            mou=MOU,
            sealing_key=SealingKey(b"\x07" * 32),
            signing_key=None,
            audit=None,  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="signing_key"):
        ReleaseStore.open(
            tmp_path / "s.db",
            mou=MOU,
            sealing_key=SEALING[US],
            signing_key=OTHER_SIGNING,
            audit=None,  # type: ignore[arg-type]
        )
    with (
        AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit,
        ReleaseStore.open(
            tmp_path / "s.db", mou=MOU, sealing_key=SEALING[US], signing_key=None, audit=audit
        ) as store,
        pytest.raises(ValueError, match="signing key"),
    ):
        store.receive(seal(make_record()), expected_session_id=SESSION, now=T0)
    assert (tmp_path / "s.db").stat().st_mode & 0o077 == 0


def test_naive_now_is_refused(tmp_path: Path) -> None:
    with open_store(tmp_path / "store.db") as store, pytest.raises(ValueError, match="aware"):
        store.receive(seal(make_record()), expected_session_id=SESSION, now=T0.replace(tzinfo=None))


def test_expiry_follows_each_categorys_retention(tmp_path: Path) -> None:
    with open_store(tmp_path / "store.db") as store:
        store.receive(seal(make_record(1)), expected_session_id=SESSION, now=T0)
        store.receive(
            seal(make_record(2, category=Category.SEX_OFFENDER)),
            expected_session_id=SESSION,
            now=T0,
        )
        days = {m.category: (m.expires_at - m.received_at).days for m in store.list(T0)}
    assert days == {Category.WATCHLIST: 365, Category.SEX_OFFENDER: 90}


def test_a_release_must_be_labelled_with_exactly_its_handles(tmp_path: Path) -> None:
    """xlink-release-v1 §10.2: the handles the transfer label named (the tokens whose outputs
    opened it) must be exactly the release's match handles; a label over a subset is refused
    as label-failed and audited, nothing stored."""
    record = make_record(match_handles=(b"\x01" * 16, b"\x02" * 16))
    sealed = seal(record)
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store:
            with pytest.raises(PolicyDenied) as info:
                store.receive(
                    sealed, expected_session_id=SESSION, now=T0, label_handles=[b"\x01" * 16]
                )
            assert info.value.reasons == ("label-failed",)
            assert store.list(T0) == ()
            store.receive(
                sealed,
                expected_session_id=SESSION,
                now=T0,
                label_handles=[b"\x02" * 16, b"\x01" * 16],
            )
            assert len(store.list(T0)) == 1
        kinds = audit_kinds(audit)
    assert kinds == [
        AuditEvent.RECEIVE_DENIED,
        AuditEvent.RELEASE_RECEIVED,
        AuditEvent.RECEIPT_SENT,
    ]


def test_a_rerun_copy_of_held_content_is_receipted_but_not_stored_twice(tmp_path: Path) -> None:
    first = make_record(1)  # the same content, sent again by a later session's release
    again = make_record(3)
    other = make_record(2, category=Category.SEX_OFFENDER)
    with (
        AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit,
        open_store(tmp_path / "store.db", audit=audit) as store,
    ):
        a = store.accept(seal(first), expected_session_id=SESSION, now=T0, own_record_id="R1")
        b = store.accept(seal(again), expected_session_id=SESSION, now=T0, own_record_id="R1")
        # The same content for another of our records is another match: stored.
        c = store.accept(seal(again), expected_session_id=SESSION, now=T0, own_record_id="R2")
        d = store.accept(seal(other), expected_session_id=SESSION, now=T0, own_record_id="R1")
        assert (a.stored, b.stored, c.stored, d.stored) == (True, False, True, True)
        listed = store.list(T0)
        assert sorted(r.own_record_id or "" for r in listed) == ["R1", "R1", "R2"]
        assert b.release_id == again.release_id and b.receipt
        # every id receipted is kept, the copy's too, named by the release it copies
        got = store.received(b.release_id, T0)
        assert got is not None and got.held is not None
        assert (got.held_id, got.originator, got.own_record_id) == (a.release_id, CA, "R1")
        assert b.held_id == a.release_id and a.held_id == a.release_id
        assert store.received(bytes(range(16)), T0) is None
        kinds = audit_kinds(audit)
    assert kinds.count(AuditEvent.RELEASE_RECEIVED) == 3
    assert kinds.count(AuditEvent.RECEIPT_SENT) == 4


def test_the_ids_of_releases_received_outlast_their_purge(tmp_path: Path) -> None:
    """A query holder answers "delivered before" with the id of a release we received, and
    after its retention the store purges it: the id and its originator stay known
    (xlink-query-v1 §7.4); the record, and which of ours it was filed for, do not."""
    record = make_record(1)
    with (
        AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit,
        open_store(tmp_path / "store.db", audit=audit) as store,
    ):
        store.accept(seal(record), expected_session_id=SESSION, now=T0, own_record_id="R1")
        (held,) = store.list(T0)
        assert store.purge(held.expires_at) == 1 and store.list(held.expires_at) == ()
        got = store.received(record.release_id, held.expires_at)
        assert got is not None and got.held is None
        # which record of ours it was filed for goes with the record
        assert (got.held_id, got.originator, got.own_record_id) == (record.release_id, CA, None)


def _accept(store: Any, record: Any, own: str, *, credit: bool = True) -> tuple[bool, bool]:
    got = store.accept(
        seal(record),
        expected_session_id=SESSION,
        now=T0,
        own_record_id=own,
        credit=credit,
    )
    return got.stored, got.credited


def test_each_stored_release_credits_once_ever(tmp_path: Path) -> None:
    """xlink-release-v1 §10.5: under a reciprocal transfer a stored release credits its
    originator once, ever: when it, or the first copy of it, comes in one (a release stored
    from a query's answer credits when a transfer brings it again). Later copies credit
    nothing (a partner sending what we hold again in each exchange, to be given new releases
    of ours for it), across sessions, store openings and a purge; the count outlives the
    purge. Outside a reciprocal transfer nothing credits."""
    stored, *copies = (make_record(n) for n in (1, 3, 4, 5, 6))  # one content, five releases
    path = tmp_path / "store.db"
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        credited = []
        for record in (stored, copies[0]):
            with open_store(path, audit=audit) as store:
                credited.append(_accept(store, record, "R1", credit=False))
        with open_store(path, audit=audit) as store:
            for record in copies[1:3]:
                credited.append(_accept(store, record, "R1"))
            # another record of ours is another match: stored and credited
            credited.append(_accept(store, copies[3], "R2"))
            assert store.credited(CA) == 2 and store.credited("US-DHS") == 0
            (first, _second) = sorted(store.list(T0), key=lambda m: m.own_record_id or "")
            assert store.purge(first.expires_at) == 2 and store.list(first.expires_at) == ()
            assert store.credited(CA) == 2  # a purge takes no credit back
        kinds = audit_kinds(audit)
    assert credited == [
        (True, False),  # not in a reciprocal transfer: nothing credited
        (False, False),
        (False, True),  # the first copy a reciprocal transfer brings credits
        (False, False),
        (True, True),
    ]
    assert kinds.count(AuditEvent.RECEIPT_SENT) == 5  # every copy receipted all the same


def test_a_store_written_before_the_copy_note_is_upgraded_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store kept by an earlier build has no ``credits`` and no ``received`` table (and its
    ``copy_credited`` column is no longer read): opening it adds them, its releases keep
    their rows, their first copy is credited as a new store's (the count starts from
    nothing), and the ids of what it received are known, those it purged before
    from its audit log (an honest holder's "delivered before" naming one was taken for a
    false answer); all of it in one transaction, so an open that fails part way leaves the
    next one to do it whole (it once left the table empty for good)."""
    stored, copy, again, purged = (make_record(n) for n in (1, 3, 4, 2))
    path = tmp_path / "store.db"
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(path, audit=audit) as store:
            _accept(store, stored, "R1")
            _accept(store, purged, "R2")
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE releases ADD COLUMN copy_credited INTEGER DEFAULT 1")
            conn.execute("DROP TABLE credits")
            conn.execute("DROP TABLE received")
            conn.execute("DELETE FROM releases WHERE release_id = ?", (purged.release_id,))
        import xlink.store.store as opener

        with monkeypatch.context() as m:  # the first open stops after the table and its copy
            m.setattr(opener, "_INSERT_RECEIVED", "INSERT INTO stopped_here VALUES (?, ?, ?, ?)")
            with pytest.raises(sqlite3.OperationalError), open_store(path, audit=audit):
                pass
        with open_store(path, audit=audit) as store:
            assert len(store.list(T0)) == 1
            known = store.received(stored.release_id, T0)
            assert known is not None and (known.held_id, known.own_record_id) == (
                stored.release_id,
                "R1",
            )
            gone = store.received(purged.release_id, T0)
            assert gone is not None and (gone.originator, gone.held) == (CA, None)
            got = [_accept(store, r, "R1") for r in (copy, again)]
            assert store.credited(CA) == 1
    assert got == [(False, True), (False, False)]


@pytest.mark.parametrize("dated", ["ahead", "expired"])
def test_a_release_refused_for_its_date_in_a_transfer_is_audited_once(
    tmp_path: Path, dated: str
) -> None:
    """The store audits a release it refuses for its date (§7 step 12), and the transfer's
    receiver audited it again under the label's first handle: one refusal read as two."""
    record = make_record(7)
    retention = record.caveats.retention_days * DAY
    created = T0 + 2 * DAY if dated == "ahead" else T0 - retention
    record = dataclasses.replace(record, created_at=created)
    outputs = per_handle(lambda h: hashlib.sha512(b"an output, for the test: " + h).digest())
    frame = seal_labelled(
        seal(record).data,
        record.match_handles,
        session_id=SESSION,
        outputs_of=outputs,
        rng=DeterministicRandom("double-audit"),
    )
    match = SimpleNamespace(handles=tuple(sorted(record.match_handles)), local_record_id="own")
    with AuditLog.open(tmp_path / "audit.db", signing_key=AUDIT_KEY) as audit:
        with open_store(tmp_path / "store.db", audit=audit) as store:
            agency = SimpleNamespace(store=store, audit=audit, clock=lambda: T0, peer_id=CA)
            receiver = Receiver(
                cast(Any, agency), SESSION, cast(Any, SimpleNamespace(matches=(match,))), outputs
            )
            ok, reason, _ = receiver.store_one(frame)
            assert store.list(T0) == ()
        denied = [e for e in audit.entries() if e.kind is AuditEvent.RECEIVE_DENIED]
    expected = DENY_CREATED_IN_FUTURE if dated == "ahead" else DENY_EXPIRED
    assert (ok, reason, receiver.refused) == (False, expected.encode(), 1)
    assert [e.fields["reason"] for e in denied] == [expected]
