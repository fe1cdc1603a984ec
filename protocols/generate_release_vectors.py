#!/usr/bin/env python3
"""Generate the xlink-release-v1 test vectors (spec: protocols/xlink-release-v1.md §9).

Writes ``protocols/vectors/release-v1/release.json``. Keys, ids, nonces and times come from
fixed seeds through ``DeterministicRandom`` and Ed25519 signatures are deterministic, so every
member is reproducible except ``sealed`` examples: libsodium draws the sealed box's ephemeral
key itself. A run keeps the stored sealed example when it still opens to the same envelope, so
running this twice gives identical files; ``tests/release/test_release_vectors.py`` regenerates
the vectors in memory and compares.

Usage: ``python protocols/generate_release_vectors.py [--check]``
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vector_files

from xlink.crypto.keys import SealingKey, SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.errors import DecryptionError
from xlink.policy import Mou, PartyKeys, load_sample_template, mou_digest, mou_to_document
from xlink.records.model import (
    BirthDate,
    Category,
    IdentityDocument,
    PersonName,
    PersonRecord,
    SourceMetadata,
    UkGrading,
)
from xlink.release import (
    ReleaseRecord,
    SourceHandleKey,
    decide_release,
    encode_release,
    issue_receipt,
    make_source_handle,
    release_digest,
    sign_release,
)
from xlink.release.codec import pack
from xlink.release.record import content_digest

OUT = Path(__file__).resolve().parent / "vectors" / "release-v1" / "release.json"
CA, US = "CA-RCMP", "US-DHS"
SCHEMA_DIGEST = bytes(32)  # the vectors do not depend on a linkage schema
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Keys:
    signing: dict[str, SigningKey]
    sealing: dict[str, SealingKey]
    handle: SourceHandleKey


def make_keys() -> Keys:
    rng = DeterministicRandom("xlink-release-v1/keys")
    signing = {CA: SigningKey.generate(rng), US: SigningKey.generate(rng)}
    sealing = {CA: SealingKey.generate(rng), US: SealingKey.generate(rng)}
    return Keys(signing, sealing, SourceHandleKey.generate(rng))


def make_mou(keys: Keys) -> Mou:
    rng = DeterministicRandom("xlink-release-v1/certs")
    party = {
        a: PartyKeys(keys.signing[a].verify_key, keys.sealing[a].public_key, rng(32))
        for a in (CA, US)
    }
    mou = load_sample_template().fill(party, schema_digest=SCHEMA_DIGEST)
    return dataclasses.replace(mou, approval_required=False)


def records() -> list[PersonRecord]:
    common: dict[str, Any] = {
        "birth_date": BirthDate(1978, 4, 18),
        "nationalities": ("CAN",),
        "documents": (IdentityDocument("P", "AB123456", "CAN", "2031-01-01"),),
    }
    return [
        PersonRecord(
            record_id="CAWL-00001",
            category=Category.WATCHLIST,
            name=PersonName(given="Grzegorz", family="Dąbrowski"),
            aliases=(PersonName(full="Greg Dabrowski"),),
            source=SourceMetadata("RCMP-SRC-4994", grading=UkGrading(3, "D")),
            payload={"Risk Level": "High", "Offence": "Terrorist financing", "Remarks": "x"},
            **common,
        ),
        PersonRecord(
            record_id="CASO-00001",
            category=Category.SEX_OFFENDER,
            name=PersonName(given="Sergey", family="Zhukov"),
            source=SourceMetadata("RCMP-SRC-7515", grading=UkGrading(2, "E")),
            payload={"Offence": "Child luring", "Risk Level": "Very High"},
            **common,
        ),
    ]


def build_record(keys: Keys, mou: Mou, record: PersonRecord, seed: str) -> ReleaseRecord:
    rng = DeterministicRandom(seed)
    content = decide_release(record, mou, originator=CA)
    assert record.source is not None
    return ReleaseRecord(
        release_id=rng(16),
        session_id=rng(16),
        mou_id=mou.id,
        mou_digest=mou_digest(mou),
        originator=CA,
        recipient=US,
        category=content.category,
        match_handles=tuple(sorted(rng(16) for _ in range(2))),
        created_at=NOW,
        fields=content.fields,
        caveats=content.caveats,
        grading=content.grading,
        source_handle=make_source_handle(keys.handle, record.source.source_id, rng),
    )


def _stored_sealed(name: str, envelope: bytes, keys: Keys) -> str | None:
    """The sealed example already on file for ``name`` if it still opens to ``envelope``."""
    try:
        stored = json.loads(OUT.read_text())
        for case in stored["valid"]:
            if (
                case["name"] == name
                and keys.sealing[US].open(bytes.fromhex(case["sealed"])) == envelope
            ):
                return str(case["sealed"])
    except (OSError, ValueError, KeyError, TypeError, DecryptionError):
        pass
    return None


def valid_cases(keys: Keys, mou: Mou) -> tuple[list[dict[str, Any]], list[ReleaseRecord]]:
    cases, built = [], []
    for record in records():
        name = f"{record.category.value}-release"
        release = build_record(keys, mou, record, f"xlink-release-v1/{name}")
        signed = sign_release(release, keys.signing[CA])
        envelope = signed.to_bytes()
        sealed = _stored_sealed(name, envelope, keys)
        if sealed is None:
            sealed = keys.sealing[US].public_key.seal(envelope).hex()
        receipt = issue_receipt(release, keys.signing[US], now=NOW)
        cases.append(
            {
                "name": name,
                "session_id": release.session_id.hex(),
                "release": {
                    "release_id": release.release_id.hex(),
                    "category": release.category.value,
                    "match_handles": [h.hex() for h in release.match_handles],
                    "created_at_us": int(NOW.timestamp()) * 1_000_000,
                    "fields": {k: list(v) for k, v in release.fields.items()},
                    "grading": None if release.grading is None else release.grading.code(),
                    "source_handle": release.source_handle.hex(),
                },
                "source_id": record.source.source_id if record.source else "",
                "encoded": encode_release(release).hex(),
                "digest": signed.digest.hex(),
                "content_digest": content_digest(release).hex(),
                "signature": signed.signature.hex(),
                "envelope": envelope.hex(),
                "sealed": sealed,
                "receipt_received_at_us": int(NOW.timestamp()) * 1_000_000,
                "receipt": receipt.hex(),
            }
        )
        built.append(release)
    return cases, built


def invalid_cases(keys: Keys, mou: Mou, base: ReleaseRecord) -> list[dict[str, Any]]:
    """Signed envelopes a recipient must refuse, with the error each must give (spec §7)."""
    session = base.session_id.hex()

    def signed(record: ReleaseRecord, key: SigningKey | None = None) -> bytes:
        return sign_release(record, key or keys.signing[CA]).to_bytes()

    good = signed(base)
    policy = mou.policy_for(Category.SEX_OFFENDER)
    assert policy is not None
    other_key = SigningKey(DeterministicRandom("xlink-release-v1/forger")(32))
    out: list[tuple[str, bytes, str, dict[str, Any]]] = [
        ("wrong-signature", signed(base, other_key), session, {"error": "DecryptionError"}),
        (
            "wrong-mou-digest",
            signed(dataclasses.replace(base, mou_digest=bytes(32))),
            session,
            {"error": "ReleaseRejected", "reason": "mou-mismatch"},
        ),
        ("wrong-session", good, "00" * 16, {"error": "ReleaseRejected", "reason": "wrong-session"}),
        (
            "wrong-recipient",
            signed(dataclasses.replace(base, recipient="XX-OTHER")),
            session,
            {"error": "ReleaseRejected", "reason": "wrong-recipient"},
        ),
        (
            "wrong-originator",
            signed(dataclasses.replace(base, originator="XX-OTHER")),
            session,
            {"error": "ReleaseRejected", "reason": "wrong-originator"},
        ),
        (
            "field-not-allowed",
            signed(dataclasses.replace(base, fields={**base.fields, "payload.remarks": ("x",)})),
            session,
            {"error": "PolicyDenied", "reasons": ["field-not-allowed"]},
        ),
        (
            "category-not-allowed",
            signed(dataclasses.replace(base, category=Category.OTHER)),
            session,
            {"error": "PolicyDenied", "reasons": ["category-not-allowed"]},
        ),
        (
            "caveats-mismatch",
            signed(dataclasses.replace(base, caveats=policy.caveats)),
            session,
            {"error": "PolicyDenied", "reasons": ["caveats-mismatch"]},
        ),
        (
            "grading-missing",
            signed(dataclasses.replace(base, grading=None)),
            session,
            {"error": "PolicyDenied", "reasons": ["grading-missing"]},
        ),
        ("truncated", good[:-1], session, {"error": "ReleaseRejected", "reason": "truncated"}),
        (
            "trailing-bytes",
            good + b"\x00",
            session,
            {"error": "ReleaseRejected", "reason": "malformed"},
        ),
        (
            "unsupported-version",
            b"\x02" + good[1:],
            session,
            {"error": "ReleaseRejected", "reason": "unsupported-version"},
        ),
        (
            "record-not-canonical",
            pack([b"\x01\x90", keys.signing[CA].sign(release_digest(b"\x01\x90"))]),
            session,
            {"error": "ReleaseRejected", "reason": "malformed"},
        ),
    ]
    return [
        {"name": n, "envelope": e.hex(), "expected_session_id": s, **err} for n, e, s, err in out
    ]


def build_vectors() -> str:
    keys = make_keys()
    mou = make_mou(keys)
    valid, built = valid_cases(keys, mou)
    doc = {
        "protocol": "xlink-release-v1",
        "generator": "protocols/generate_release_vectors.py",
        "keys": {
            "originator": CA,
            "recipient": US,
            "originator_signing_seed": keys.signing[CA].seed().hex(),
            "recipient_signing_seed": keys.signing[US].seed().hex(),
            "recipient_sealing_secret": keys.sealing[US].secret().hex(),
            "source_handle_key": keys.handle.secret().hex(),
        },
        "mou": mou_to_document(mou),
        "mou_digest": mou_digest(mou).hex(),
        "valid": valid,
        "invalid": invalid_cases(keys, mou, built[0]),
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0] if __doc__ else None
    return vector_files.main(lambda: {OUT.name: build_vectors()}, OUT.parent, description, argv)


if __name__ == "__main__":
    raise SystemExit(main())
