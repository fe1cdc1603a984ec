"""Travel notices: a flight manifest asked of a high-risk sex-offender registry, in one process.

Canada (CA-RCMP) holds the high-risk sex-offender registry; the United States (US-DHS) holds an
inbound traveller manifest. Each opens its ``Agency`` under the MOU both signed, and they use
the real-time query mode (docs/query.md) over an in-memory connection: Canada serves its
registry as a table of OPRF entries under its key of the month (``QueryService``); the US asks
about its manifest, learns which of its travellers match, and asks for those records' releases
only: cut to what the MOU allows for the category, under its caveats (TLP, handling code,
retention), with the source replaced by an opaque handle. Canada learns how many evaluations
were asked and which of its records' releases, nothing about the travellers without a hit.

The MOU requires an officer's approval of each release (Prüm-style two-step): the first query
reports the hits and Canada queues the releases (pending); a Canadian officer, enrolled by
Canada as an approver, signs an approval of each; the next query delivers them. A US officer,
enrolled by the US as a reader, opens each release from the US store (each read signed and
audited with the officer's key) and issues a travel notice for the US's own matched traveller.
Run:

    python examples/sex_offender_travel_notice.py [--json]

What is printed is what US-DHS learns: for each matched traveller (its own manifest id), the
released fields and their caveats. Nothing about the rest of the registry, no registry record
id, no source.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xlink.agency import Agency, QueryOutcome, QueryService, query_in_process
from xlink.audit import verify_log
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.crypto.rand import DeterministicRandom
from xlink.officers import OfficerAction, OfficerKey, OfficerRole
from xlink.prepare import PreparedSide
from xlink.release import QueueState, ReleaseRecord
from xlink.samples import sample_path

CA, US = "CA-RCMP", "US-DHS"
# A fixed clock and seeded randomness keep the example reproducible. DeterministicRandom is for
# tests and examples only: a real agency uses system_random and keeps its keys.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSPHRASE = b"example passphrase, not a secret"
PURPOSE = "child-protection"  # one of the MOU's purposes: every read of a release names one
# The MOU's daily quota of OPRF evaluations the US may ask of Canada: about 27 per traveller with
# the default linkage schema, so a manifest of 500 takes some 13,500, and it is asked twice here.
QUOTA_PER_DAY = 50_000


@dataclass(frozen=True)
class TravelNotice:
    """What a US officer sees for one matched traveller: the traveller's own manifest id, the
    fields Canada released, and the caveats they came with."""

    traveller_id: str
    category: str
    tlp: str
    handling_code: str
    handling_conditions: str
    retention_days: int
    fields: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, record: ReleaseRecord, traveller_id: str) -> TravelNotice:
        c = record.caveats
        return cls(
            traveller_id=traveller_id,
            category=record.category.value,
            tlp=c.tlp.value,
            handling_code=c.handling_code.value,
            handling_conditions=" ".join(c.handling_conditions.split()),
            retention_days=c.retention_days,
            fields=dict(record.fields),
        )


def open_agency(work: Path, ceremony: CeremonyFiles, agency: str) -> Agency:
    return ceremony.open_agency(
        agency,
        work / agency.lower(),
        passphrase=PASSPHRASE,
        clock=lambda: NOW,
        rng=DeterministicRandom(f"travel-notice-example/{agency}"),
    )


def enrol_officer(agency: Agency, role: OfficerRole) -> OfficerKey:
    """An officer's own key (a real one is made with ``xlink officer keygen`` and kept under
    the officer's passphrase), enrolled by ``agency`` with ``role``: the queue takes only an
    enrolled approver's signed decision, the store opens a record only for an enrolled
    reader's signed read."""
    officer = OfficerKey.generate(
        f"{agency.agency_id} {role.value}",
        rng=DeterministicRandom(f"travel-notice-example/{agency.agency_id}/officer"),
    )
    agency.officers.enrol(
        officer.public,
        [role],
        agency_key=agency.keys.signing_key,
        audit=agency.audit,
        now=NOW,
        valid_for=timedelta(days=365),
    )
    return officer


async def query(registry: QueryService, us: Agency, manifest: PreparedSide) -> QueryOutcome:
    """One query session: Canada's service answers the US over an in-memory connection (over
    the network: ``xlink query serve`` and ``xlink query manifest``, docs/query.md)."""
    outcome = await query_in_process(registry, (us, manifest))
    return outcome


async def run(work: Path) -> dict[str, Any]:
    # Keys for both agencies and the bundled CA-US MOU template filled and signed by both; the
    # template keeps its approval_required = true.
    ceremony = demo_ceremony(
        work / "ceremony",
        passphrase=PASSPHRASE,
        now=NOW,
        rng=DeterministicRandom("travel-notice-example/ceremony"),
        query_quota_per_day=QUOTA_PER_DAY,
    )
    with open_agency(work, ceremony, CA) as ca, open_agency(work, ceremony, US) as us:
        approver = enrol_officer(ca, OfficerRole.APPROVER)
        reader = enrol_officer(us, OfficerRole.READER)
        registry = ca.prepare([sample_path("ca_sex_offenders.csv")])
        manifest = us.prepare([sample_path("us_travellers.csv")])
        # Canada's query table of the month: its registry's tokens under its OPRF key.
        service = ca.query_service(registry)

        # 1. The hits: the US evaluates its travellers' tokens with Canada (blinded), looks
        #    them up in its copy of Canada's table, decides with the MOU's schema and asks for
        #    the decided records' releases. Canada queues them for an officer: pending.
        first = await query(service, us, manifest)

        # 2. A Canadian officer reviews Canada's queued releases and approves each, signing
        #    the approval of that release (audited with the officer's key and signature).
        approved = [
            ca.queue.approve(
                item.item_id,
                act=approver.sign_act(
                    OfficerAction.APPROVE, agency=CA, target=item.release_id, detail="", now=NOW
                ),
                now=NOW,
            )
            for item in ca.queue.pending(NOW)
        ]

        # 3. The next query delivers what was approved, with the US's receipts (a record
        #    pending, denied or delivered before is never queued or sent again).
        second = await query(service, us, manifest)
        receipted = sum(item.state is QueueState.SENT for item in ca.queue.items(NOW))

        # 4. A US officer opens each release received, signing a read for a purpose the MOU
        #    allows (every read is audited), and finds the US's own traveller it matched.
        notices = []
        for stored in us.store.list(NOW):
            assert stored.own_record_id is not None
            read = reader.sign_act(
                OfficerAction.READ, agency=US, target=stored.release_id, detail=PURPOSE, now=NOW
            )
            record = us.store.read(stored.release_id, act=read, now=NOW)
            notices.append(TravelNotice.of(record, stored.own_record_id))
        notices.sort(key=lambda n: n.traveller_id)
        mou_id = ca.mou.id
        # Each log is checked with the key that signs its checkpoints: the agency's audit key.
        keys = {agency: a.keys.audit_key.verify_key for agency, a in ((CA, ca), (US, us))}
    first_fates = Counter(a.fate for a in first.answers if a.matched)
    second_fates = Counter(a.fate for a in second.answers if a.matched)
    return {
        "mou_id": mou_id,
        "registry_size": registry.loaded,
        "manifest_size": manifest.loaded,
        "table_entries": second.table_entries,
        "decided_matches": first.matched,
        "queued_for_approval": first_fates["queued"],
        "received_first": first.received,
        "approved": len(approved),
        "denied": second_fates["denied"],  # by the MOU, or by an officer
        "sent": second_fates["sent"],
        "received": second.received,
        "receipts_verified": receipted,
        # What Canada learns of each query: the number of evaluations, and the records whose
        # release the US asked for; never which travellers did not match.
        "canada_learned": {
            "evaluations_per_query": second.evaluations,
            "releases_asked_per_query": second.matched,
        },
        "quota_per_day": QUOTA_PER_DAY,
        "audit_ok": all(verify_log(work / a.lower() / "audit.db", keys[a]).ok for a in (CA, US)),
        "notices": notices,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        summary = asyncio.run(run(Path(work)))
    notices: list[TravelNotice] = summary.pop("notices")

    if args.json:
        summary["notices"] = [
            {
                "traveller_id": n.traveller_id,
                "category": n.category,
                "tlp": n.tlp,
                "fields": sorted(n.fields),  # names only: the values stay in the notice
            }
            for n in notices
        ]
        print(json.dumps(summary, indent=2))
        return
    learned = summary["canada_learned"]
    print(
        f"{US}: manifest of {summary['manifest_size']} travellers asked of {CA}'s registry "
        f"({summary['registry_size']} records, a query table of {summary['table_entries']} "
        f"entries) under MOU {summary['mou_id']}"
    )
    print(
        f"{summary['decided_matches']} hit(s); {CA} queued {summary['queued_for_approval']} "
        f"release(s) (pending), its officer approved {summary['approved']}; the next query: "
        f"{summary['sent']} sent, {summary['denied']} denied, "
        f"{summary['receipts_verified']} receipted"
    )
    print(
        f"{CA} learned of each query: {learned['evaluations_per_query']} evaluations (of "
        f"{summary['quota_per_day']} a day) and {learned['releases_asked_per_query']} "
        f"release request(s); nothing about the travellers without a hit"
    )
    print(f"{len(notices)} travel notice(s)\n")
    for n in notices:
        print(
            f"TRAVEL NOTICE  traveller {n.traveller_id}  [{n.category}]  TLP:{n.tlp}  "
            f"handling {n.handling_code}  keep {n.retention_days} days"
        )
        for name, values in n.fields.items():
            print(f"    {name:<16} {'; '.join(values)}")
        if n.handling_conditions:
            print(f"    conditions       {n.handling_conditions}")
        print()


if __name__ == "__main__":
    main()
