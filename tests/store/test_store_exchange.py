"""THE end-to-end test of the stores: two agencies' records -> one exchange through
`xlink.agency` (PSI, decisions, labelled releases both ways, receipts) over a memory pair ->
each recipient's store holds the partner's releases, each filed against its own matched record,
readable under the MOU, exportable to STIX without a source; both audit logs verify."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from _officers import enrol_agency_officers
from _store_support import read_act
from _two_agencies import exchanged_in_process

from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.crypto.keyfiles import load_audit_verify_key
from xlink.store import to_stix_bundle

DATA = Path(__file__).resolve().parents[2] / "xlink" / "data"
CA, US = "CA-RCMP", "US-DHS"
PEER = {CA: US, US: CA}
FILES = {CA: [DATA / "ca_watchlist.csv"], US: [DATA / "us_watchlist.csv"]}
PASSPHRASE = b"store exchange test, not secret"


def test_two_agencies_end_to_end_into_both_stores(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with exchanged_in_process(tmp_path, FILES, passphrase=PASSPHRASE, seed="exchange") as run:
        agencies, sides, c = run.agencies, run.sides, run.ceremony
        ca, us = run.outcomes[CA], run.outcomes[US]
        assert ca.decided == us.decided > 0
        assert ca.released_total == ca.receipts_verified == us.received_total > 0
        assert us.released_total == us.receipts_verified == ca.received_total > 0
        for me, outcome in ((CA, ca), (US, us)):
            store = agencies[me].store
            listed = store.list(now)
            assert len(listed) == outcome.received_total
            # Each release is filed against one of our own decided records, as the matches
            # file says.
            with Path(outcome.matches_file).open(encoding="utf-8") as f:
                rows = {r["inbound_release_id"]: r for r in csv.DictReader(f)}
            own_ids = {r.record_id for r in sides[me].records}
            for m in listed:
                assert m.own_record_id in own_ids
                assert rows[m.release_id.hex()]["own_record_id"] == m.own_record_id
            enrol_agency_officers(agencies[me], now)
            records = [
                store.read(m.release_id, act=read_act(m.release_id, now, agency=me), now=now)
                for m in listed
            ]
            # The partner's sources never reach us, not even in a STIX export.
            bundle = str(to_stix_bundle(records))
            peer_sources = {
                r.source.source_id for r in sides[PEER[me]].records if r.source is not None
            }
            assert peer_sources and not any(source in bundle for source in peer_sources)
    for a in (CA, US):
        key = load_audit_verify_key(c.keys[a])
        assert verify_log(tmp_path / a / "audit.db", key).ok
    with AuditLog.open(tmp_path / US / "audit.db", signing_key=None) as log:
        kinds = [e.kind for e in log.entries()]
    n = us.received_total
    assert kinds.count(AuditEvent.RELEASE_RECEIVED) == kinds.count(AuditEvent.RECEIPT_SENT) == n
    assert kinds.count(AuditEvent.RECORD_READ) == n
    assert kinds.count(AuditEvent.RECEIPT_RECEIVED) == us.released_total
