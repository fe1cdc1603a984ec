"""THE end-to-end test of issue 4 item 4: two agencies' records -> PSI in memory -> decide on
both sides -> releases both ways -> each recipient's store -> receipts verified by each
originator -> both stores hold the releases, both audit logs verify."""

from __future__ import annotations

from pathlib import Path

from _store_support import CA, HANDLE_KEY, SEALING, SIGNING, T0, US, sample_mou

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.crypto.rand import DeterministicRandom
from xlink.decide import decide
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import load_default_schema
from xlink.policy import mou_digest
from xlink.prepare import prepare_side
from xlink.protocol.events import PsiResult
from xlink.release import match_for, release_decided, verify_receipt
from xlink.store import ReleaseStore, to_stix_bundle

DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"
FILES = {CA: [DATA / "ca_watchlist.csv"], US: [DATA / "us_watchlist.csv"]}


def test_two_agencies_end_to_end_into_both_stores(tmp_path: Path) -> None:
    mou = sample_mou(approval_required=False)
    schema = load_default_schema()
    sides = {a: prepare_side(FILES[a], schema=schema) for a in (CA, US)}
    ca_result, us_result = exchange_in_memory(
        Party(CA, sides[CA].tokens, rng=DeterministicRandom("ca-psi")),
        Party(US, sides[US].tokens, rng=DeterministicRandom("us-psi")),
        schema=schema,
        mou_id=mou.id,
        mou_digest=mou_digest(mou),
        padding_bucket=mou.padding_bucket,
    )
    assert isinstance(ca_result, PsiResult) and isinstance(us_result, PsiResult)
    decisions = {
        CA: decide(ca_result, schema, mou.match_threshold),
        US: decide(us_result, schema, mou.match_threshold),
    }
    assert decisions[CA].matches and len(decisions[CA].matches) == len(decisions[US].matches)

    audits = {
        a: AuditLog.open(tmp_path / f"{a}-audit.db", signing_key=SIGNING[a]) for a in (CA, US)
    }
    stores = {
        a: ReleaseStore.open(
            tmp_path / f"{a}-store.db",
            mou=mou,
            sealing_key=SEALING[a],
            signing_key=SIGNING[a],
            audit=audits[a],
        )
        for a in (CA, US)
    }
    sent: dict[str, set[bytes]] = {}
    for originator, recipient in ((CA, US), (US, CA)):
        batch = release_decided(
            decisions[originator],
            sides[originator].records,
            mou=mou,
            originator=originator,
            signing_key=SIGNING[originator],
            handle_key=HANDLE_KEY[originator],
            rng=DeterministicRandom(f"release-{originator}"),
            now=T0,
            audit=audits[originator],
        )
        assert batch.sealed and not batch.queued
        sources = {r.source.source_id for r in sides[originator].records if r.source is not None}
        for sealed in batch.sealed:
            receipt = stores[recipient].receive(
                sealed.data, expected_session_id=decisions[recipient].session_id, now=T0
            )
            # The originator checks the receipt and logs it.
            got = verify_receipt(receipt, mou=mou, release=sealed)
            audits[originator].append(
                AuditEvent.RECEIPT_RECEIVED,
                {"session": got.session_id, "handle": got.release_id, "digest": got.release_digest},
                now=T0,
            )
        sent[recipient] = {s.release_id for s in batch.sealed}
        # The recipient holds every release, finds its own record for each, and can read it.
        listed = stores[recipient].list(T0)
        assert {m.release_id for m in listed} == sent[recipient]
        reader = SIGNING[recipient].verify_key
        records = [
            stores[recipient].read(m.release_id, purpose="border-security", reader=reader, now=T0)
            for m in listed
        ]
        assert all(match_for(r, decisions[recipient].matches) for r in records)
        bundle = str(to_stix_bundle(records))
        assert not any(source in bundle for source in sources)

    for a in (CA, US):
        stores[a].close()
        audits[a].close()
        report = verify_log(tmp_path / f"{a}-audit.db", SIGNING[a].verify_key)
        assert report.ok, report
    with AuditLog.open(tmp_path / f"{US}-audit.db", signing_key=None) as log:
        kinds = [e.kind for e in log.entries()]
    n = len(sent[US])
    assert kinds.count(AuditEvent.RELEASE_RECEIVED) == kinds.count(AuditEvent.RECEIPT_SENT) == n
    assert kinds.count(AuditEvent.RECORD_READ) == n
    assert kinds.count(AuditEvent.RECEIPT_RECEIVED) == len(sent[CA])
