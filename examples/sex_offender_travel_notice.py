"""Travel notices: a flight manifest against a high-risk sex-offender registry, in one process.

Canada (CA-RCMP) holds the high-risk sex-offender registry; the United States (US-DHS) holds an
inbound traveller manifest. The two run a private set intersection, each decides its matches,
and Canada — the originator — releases ONLY the registry records that matched, cut to what the
signed MOU allows for the category, under its caveats (TLP, handling code, retention), with the
source replaced by an opaque handle. The US opens each release and issues a travel notice for
its own matched traveller. Run:

    python examples/sex_offender_travel_notice.py [--json]

What is printed is what US-DHS learns: for each matched traveller (its own manifest id), the
released fields and their caveats. Nothing about unmatched travellers, nothing about the rest
of the registry, no registry record id, no source.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from xlink.cli.cmd_demo import bundled_path
from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.decide import decide
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import Mou, PartyKeys, accept_mou, load_sample_template, mou_digest, sign_mou
from xlink.prepare import prepare_side
from xlink.protocol import PsiResult
from xlink.release import (
    ApprovalQueue,
    ReleaseRecord,
    SourceHandleKey,
    match_for,
    open_release,
    release_approved,
    release_decided,
)

CA, US = "CA-RCMP", "US-DHS"
# A fixed clock and fixed key seeds keep the example reproducible. DeterministicRandom is for
# tests and examples only: a real agency generates keys with system_random and keeps them.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class AgencyKeys:
    signing: SigningKey  # signs the MOU and the records it releases
    sealing: SealingKey  # opens the records released to it
    tls_sha256: bytes  # stands in for its TLS certificate's fingerprint (not used in memory)


def agency_keys(seed: str) -> AgencyKeys:
    rng = DeterministicRandom(seed)
    return AgencyKeys(SigningKey.generate(rng), SealingKey.generate(rng), rng(32))


def agree_mou(keys: dict[str, AgencyKeys]) -> Mou:
    """Fill the bundled CA-US template with both agencies' public keys; both sign; each side
    accepts it (signatures valid, in force today) before using it."""
    schema = load_default_schema()
    mou = load_sample_template().fill(
        {
            agency: PartyKeys(k.signing.verify_key, k.sealing.public_key, k.tls_sha256)
            for agency, k in keys.items()
        },
        schema_digest=schema_digest(schema),
    )
    signed = sign_mou(sign_mou(mou, CA, keys[CA].signing), US, keys[US].signing)
    today = NOW.date()
    accepted = {agency: accept_mou(signed, local_agency=agency, today=today) for agency in keys}
    assert accepted[CA] == accepted[US]
    return accepted[US]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    keys = {CA: agency_keys("example-ca"), US: agency_keys("example-us")}
    mou = agree_mou(keys)
    schema = load_default_schema()
    with tempfile.TemporaryDirectory() as work:
        registry = prepare_side([bundled_path("ca_sex_offenders.csv")], rejects_dir=work)
        manifest = prepare_side([bundled_path("us_travellers.csv")], rejects_dir=work)

        # 1. Private set intersection, bound to the MOU's id and digest (one process here;
        #    across a network each side runs its own session: examples/embed_in_service.py).
        ca_result, us_result = exchange_in_memory(
            Party(CA, registry.tokens, rng=DeterministicRandom("example-ca-psi")),
            Party(US, manifest.tokens, rng=DeterministicRandom("example-us-psi")),
            schema=schema,
            mou_id=mou.id,
            mou_digest=mou_digest(mou),
        )
        assert isinstance(ca_result, PsiResult) and isinstance(us_result, PsiResult)

        # 2. Each side decides, at the MOU's threshold, from what the protocol revealed.
        ca_decision = decide(ca_result, schema, threshold=mou.match_threshold)
        us_decision = decide(us_result, schema, threshold=mou.match_threshold)

        # 3. Canada releases its matched registry records only. The sample MOU requires an
        #    officer's approval for each release (Prüm-style two-step): queue, approve, send.
        rng = DeterministicRandom("example-ca-release")
        officer = SigningKey.generate(rng).verify_key
        with ApprovalQueue.open(Path(work) / "ca-releases.db") as queue:
            batch = release_decided(
                ca_decision,
                registry.records,
                mou=mou,
                originator=CA,
                signing_key=keys[CA].signing,
                handle_key=SourceHandleKey.generate(rng),
                rng=rng,
                now=NOW,
                queue=queue,
            )
            for pending in batch.queued:
                queue.approve(pending.item_id, officer, now=NOW)
            sealed = release_approved(queue, mou=mou, signing_key=keys[CA].signing, now=NOW)

    # 4. The US opens each release (seal, signature, MOU, session, policy all checked) and
    #    finds its own traveller through the match handles both sides hold.
    notices: list[TravelNotice] = []
    for release in sealed:  # each .data is the bytes sent to the US
        record = open_release(
            release.data, keys[US].sealing, mou=mou, expected_session_id=us_decision.session_id
        )
        match = match_for(record, us_decision.matches)
        assert match is not None
        notices.append(TravelNotice.of(record, match.local_record_id))
    notices.sort(key=lambda n: n.traveller_id)

    if args.json:
        summary = {
            "registry_size": registry.loaded,
            "manifest_size": manifest.loaded,
            "decided_matches": len(us_decision.matches),
            "denied": len(batch.denied),
            "notices": [
                {
                    "traveller_id": n.traveller_id,
                    "category": n.category,
                    "tlp": n.tlp,
                    "fields": sorted(n.fields),  # names only: the values stay in the notice
                }
                for n in notices
            ],
        }
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{US}: manifest of {manifest.loaded} travellers checked against {CA}'s registry "
        f"({registry.loaded} records) under MOU {mou.id}"
    )
    print(f"{len(notices)} travel notice(s); {len(batch.denied)} release(s) denied by the MOU\n")
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
