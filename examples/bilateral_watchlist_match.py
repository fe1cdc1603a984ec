"""Canada ↔ United States watchlist match, in one process, through the Python API.

Both agencies hold keys and an MOU they both signed (made here by ``demo_ceremony`` in a
temporary directory). Each opens its ``Agency`` (audit log, release store, outbound ledger),
prepares its own watchlist (load, validate, derive match tokens), and the two run one whole
exchange over an in-memory connection: an xlink-psi-v2 session, each side's decision, the check
that both decided the same pairs, then each side's matched records released to the other, cut
to what the MOU allows for the category, signed, sealed and receipted. Run:

    python examples/bilateral_watchlist_match.py [--json]

What each side prints is what that side learns: its own matched records and, for each, the
fields the partner released with their caveats, read from its own store by an officer the
agency enrolled, who signs each read (audited with the officer's key) — never the partner's
record id, source or any field the MOU keeps back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xlink.agency import Agency, AgencyOutcome, exchange_in_process
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.crypto.rand import DeterministicRandom, RandomSource
from xlink.officers import OfficerAction, OfficerKey, OfficerRole
from xlink.samples import sample_path

CA, US = "CA-RCMP", "US-DHS"
FILES = {CA: "ca_watchlist.csv", US: "us_watchlist.csv"}
# A fixed clock and seeded randomness keep the example reproducible. DeterministicRandom is for
# tests and examples only: a real agency uses system_random and keeps its keys.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSPHRASE = b"example passphrase, not a secret"
PURPOSE = "counter-terrorism"  # one of the MOU's purposes: every read of a release names one


def open_agency(
    work: Path,
    ceremony: CeremonyFiles,
    agency: str,
    *,
    clock: Callable[[], datetime],
    rng: RandomSource,
) -> Agency:
    """One agency's side: its keys, the signed MOU, the partner's public bundle, a workdir."""
    return ceremony.open_agency(
        agency, work / agency.lower(), passphrase=PASSPHRASE, clock=clock, rng=rng
    )


def enrol_reader(me: Agency, now: datetime) -> OfficerKey:
    """An officer's own key (a real one is made with ``xlink officer keygen`` and kept under
    the officer's passphrase), enrolled by the agency as a reader: the store opens a record
    only for an enrolled officer's signed read."""
    officer = OfficerKey.generate(
        f"{me.agency_id} analyst", rng=DeterministicRandom(f"{me.agency_id}/officer")
    )
    me.officers.enrol(
        officer.public,
        [OfficerRole.READER],
        agency_key=me.keys.signing_key,
        audit=me.audit,
        now=now,
        valid_for=timedelta(days=365),
    )
    return officer


def what_it_learned(
    me: Agency, outcome: AgencyOutcome, officer: OfficerKey, now: datetime
) -> dict[str, Any]:
    """One side's view: each row of its matches file (its own record, the score and the keys
    that agreed), with the partner's release for that match opened from its own store by
    ``officer``, who signs each read with the purpose."""
    rows = [json.loads(line) for line in Path(outcome.matches_file).with_suffix(".jsonl").open()]
    matches = []
    for row in rows:
        match: dict[str, Any] = {
            "own_record_id": row["own_record_id"],
            "score": float(row["score"]),
            "agreeing_keys": row["agreeing_keys"].split(),
            "partner_release": None,
        }
        if row["inbound_release_id"]:
            release_id = bytes.fromhex(row["inbound_release_id"])
            read = officer.sign_act(
                OfficerAction.READ, agency=me.agency_id, target=release_id, detail=PURPOSE, now=now
            )
            record = me.store.read(release_id, act=read, now=now)
            match["partner_release"] = {
                "release_id": row["inbound_release_id"],
                "category": record.category.value,
                "tlp": record.caveats.tlp.value,
                "handling_code": record.caveats.handling_code.value,
                "retention_days": record.caveats.retention_days,
                "fields": {name: list(values) for name, values in record.fields.items()},
            }
        matches.append(match)
    matches.sort(key=lambda m: (-m["score"], m["own_record_id"]))
    return {
        "agency": outcome.agency,
        "records": outcome.records,
        "rejected": outcome.rejected,
        "candidates": outcome.candidates,
        "decided": outcome.decided,
        "released": outcome.released_total,
        "received": outcome.received_total,
        "receipts_verified": outcome.receipts_verified,
        "audit_ok": outcome.audit_ok,
        "matches": matches,
    }


async def run(work: Path) -> dict[str, Any]:
    # The keys of both agencies and the MOU both signed. The bundled template asks for an
    # officer's approval of each release; this example releases straight through
    # (examples/sex_offender_travel_notice.py shows the approval step).
    ceremony = demo_ceremony(
        work / "ceremony",
        passphrase=PASSPHRASE,
        now=NOW,
        rng=DeterministicRandom("watchlist-example/ceremony"),
        approval_required=False,
    )
    views: dict[str, Any] = {}
    with (
        open_agency(work, ceremony, CA, clock=lambda: NOW, rng=DeterministicRandom(CA)) as ca,
        open_agency(work, ceremony, US, clock=lambda: NOW, rng=DeterministicRandom(US)) as us,
    ):
        ca_side = ca.prepare([sample_path(FILES[CA])])
        us_side = us.prepare([sample_path(FILES[US])])
        ca_out, us_out = await exchange_in_process((ca, ca_side), (us, us_side))
        for me, outcome in ((ca, ca_out), (us, us_out)):
            views[me.agency_id] = what_it_learned(me, outcome, enrol_reader(me, NOW), NOW)
    return {"session_id": ca_out.session_id, "mou_id": ca_out.mou_id, **views}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        summary = asyncio.run(run(Path(work)))
    views = {"canada": summary[CA], "usa": summary[US]}
    if args.json:
        for view in views.values():
            for m in view["matches"]:
                if m["partner_release"] is not None:  # names only: the values stay in the store
                    m["partner_release"]["fields"] = sorted(m["partner_release"]["fields"])
        print(json.dumps({"session_id": summary["session_id"], **views}, indent=2))
        return
    print(f"session {summary['session_id'][:16]}… under MOU {summary['mou_id']}")
    for view in views.values():
        print(
            f"\n{view['agency']}: {view['decided']} of its {view['records']} records matched "
            f"(of {view['candidates']} candidate pairs); released {view['released']}, "
            f"received {view['received']}, audit log "
            f"{'verified' if view['audit_ok'] else 'FAILED'}"
        )
        for m in view["matches"][:3]:
            print(
                f"  {m['own_record_id']}  score {m['score']:.1f}  [{', '.join(m['agreeing_keys'])}]"
            )
            got = m["partner_release"]
            if got is None:
                print("    no release from the partner for this match")
                continue
            print(
                f"    partner's release {got['release_id'][:12]}…  [{got['category']}]  "
                f"TLP:{got['tlp']}  handling {got['handling_code']}  "
                f"keep {got['retention_days']} days"
            )
            for name, values in got["fields"].items():
                print(f"      {name:<20} {'; '.join(values)}")


if __name__ == "__main__":
    main()
