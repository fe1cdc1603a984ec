"""Travel notices: a flight manifest against a high-risk sex-offender registry, in one process.

Canada (CA-RCMP) holds the high-risk sex-offender registry; the United States (US-DHS) holds an
inbound traveller manifest. Each opens its ``Agency`` under the MOU both signed, and the two run
an exchange over an in-memory connection: a private set intersection, each side's decision, and
the release of each side's matched records only — cut to what the MOU allows for the category,
under its caveats (TLP, handling code, retention), with the source replaced by an opaque handle.

The MOU requires an officer's approval of each release (Prüm-style two-step): the first
exchange reports the hits and queues the releases; a Canadian officer approves Canada's; the
next exchange sends the approved ones. The US opens each release from its store and issues a
travel notice for its own matched traveller (the US's own releases of its travellers wait for
a US officer, who is not part of this example). Run:

    python examples/sex_offender_travel_notice.py [--json]

What is printed is what US-DHS learns: for each matched traveller (its own manifest id), the
released fields and their caveats. Nothing about unmatched travellers, nothing about the rest
of the registry, no registry record id, no source.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlink.agency import Agency, exchange_in_process
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.cli.cmd_demo import bundled_path
from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.release import ReleaseRecord

CA, US = "CA-RCMP", "US-DHS"
# A fixed clock and seeded randomness keep the example reproducible. DeterministicRandom is for
# tests and examples only: a real agency uses system_random and keeps its keys.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSPHRASE = b"example passphrase, not a secret"
PURPOSE = "child-protection"  # one of the MOU's purposes: every read of a release names one


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


def open_agency(work: Path, ceremony: CeremonyFiles, agency: str, peer: str) -> Agency:
    return ceremony.open_agency(
        agency,
        work / agency.lower(),
        passphrase=PASSPHRASE,
        clock=lambda: NOW,
        rng=DeterministicRandom(f"travel-notice-example/{agency}"),
    )


async def run(work: Path) -> dict[str, Any]:
    # Keys for both agencies and the bundled CA-US MOU template filled and signed by both;
    # the template keeps its approval_required = true.
    ceremony = demo_ceremony(
        work / "ceremony",
        passphrase=PASSPHRASE,
        now=NOW,
        rng=DeterministicRandom("travel-notice-example/ceremony"),
    )
    officers = {
        agency: SigningKey.generate(DeterministicRandom(f"travel-notice-example/{agency}/officer"))
        for agency in (CA, US)
    }
    with open_agency(work, ceremony, CA, US) as ca, open_agency(work, ceremony, US, CA) as us:
        registry = ca.prepare([bundled_path("ca_sex_offenders.csv")])
        manifest = us.prepare([bundled_path("us_travellers.csv")])

        # 1. The hits: PSI, decisions, the check that both decided the same pairs. Each
        #    side's releases wait in its outbound ledger for an officer.
        first, _ = await exchange_in_process((ca, registry), (us, manifest))

        # 2. A Canadian officer reviews Canada's queued releases and approves them.
        approved = [
            ca.queue.approve(item.item_id, officers[CA].verify_key, now=NOW)
            for item in ca.queue.pending(NOW)
        ]

        # 3. The next exchange sends what was approved (a fresh session; nothing pending,
        #    denied or delivered before is queued or sent again), with receipts.
        ca_out, us_out = await exchange_in_process((ca, registry), (us, manifest))

        # 4. A US officer opens each release received, for a purpose the MOU allows (every read
        #    is audited), and finds the US's own traveller it matched.
        notices = []
        for stored in us.store.list(NOW):
            assert stored.own_record_id is not None
            record = us.store.read(
                stored.release_id, purpose=PURPOSE, reader=officers[US].verify_key, now=NOW
            )
            notices.append(TravelNotice.of(record, stored.own_record_id))
        notices.sort(key=lambda n: n.traveller_id)
    return {
        "mou_id": ca_out.mou_id,
        "registry_size": registry.loaded,
        "manifest_size": manifest.loaded,
        "decided_matches": us_out.decided,
        "queued_for_approval": first.queued,
        "approved": len(approved),
        "denied": ca_out.denied,  # by the MOU, or by an officer
        "sent": ca_out.released_total,
        "receipts_verified": ca_out.receipts_verified,
        "us_releases_awaiting_approval": us_out.pending,
        "canada_received": ca_out.received_total,
        "audit_ok": ca_out.audit_ok and us_out.audit_ok,
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
    print(
        f"{US}: manifest of {summary['manifest_size']} travellers checked against {CA}'s "
        f"registry ({summary['registry_size']} records) under MOU {summary['mou_id']}"
    )
    print(
        f"{summary['decided_matches']} hit(s); {CA} queued {summary['queued_for_approval']} "
        f"release(s), its officer approved {summary['approved']}, "
        f"{summary['denied']} denied; {summary['sent']} sent, "
        f"{summary['receipts_verified']} receipted"
    )
    print(
        f"{len(notices)} travel notice(s); {summary['us_releases_awaiting_approval']} US "
        f"release(s) await a US officer\n"
    )
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
