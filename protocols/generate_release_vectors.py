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
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vector_files

from xlink.audit import Checkpoint, PublishedCheckpoint
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
    DST_RECEIPT,
    RECEIPT_VERSION,
    ReleaseRecord,
    SourceHandleKey,
    decide_release,
    encode_release,
    issue_receipt,
    make_source_handle,
    release_digest,
    sign_release,
)
from xlink.release.codec import lp, pack
from xlink.release.record import content_digest

OUT = Path(__file__).resolve().parent / "vectors" / "release-v1" / "release.json"
CA, US = "CA-RCMP", "US-DHS"
SCHEMA_DIGEST = bytes(32)  # the vectors do not depend on a linkage schema
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_US = int(NOW.timestamp()) * 1_000_000


@dataclasses.dataclass(frozen=True)
class Keys:
    signing: dict[str, SigningKey]
    sealing: dict[str, SealingKey]
    handle: SourceHandleKey
    audit: SigningKey  # the recipient's audit key: signs the checkpoint its receipts carry


def make_keys() -> Keys:
    rng = DeterministicRandom("xlink-release-v1/keys")
    signing = {CA: SigningKey.generate(rng), US: SigningKey.generate(rng)}
    sealing = {CA: SealingKey.generate(rng), US: SealingKey.generate(rng)}
    handle = SourceHandleKey.generate(rng)
    audit = SigningKey(DeterministicRandom("xlink-release-v1/recipient-audit-key")(32))
    return Keys(signing, sealing, handle, audit)


def recipient_checkpoint(
    keys: Keys, seq: int, *, prev_seq: int = 1, interval: int = 100, key: SigningKey | None = None
) -> PublishedCheckpoint:
    """A checkpoint of the recipient's audit log (seq ``seq``, a fixed head hash, dated
    :data:`NOW`) signed by its audit key (or ``key``), as its receipts carry (spec §8)."""
    head = hashlib.sha256(f"xlink-release-v1/recipient-log-head/{seq}".encode()).digest()
    unsigned = Checkpoint(seq, head, NOW, prev_seq, interval, b"")
    signature = (key or keys.audit).sign(unsigned.message())
    checkpoint = dataclasses.replace(unsigned, signature=signature)
    return PublishedCheckpoint(keys.audit.verify_key, checkpoint)


def signed_receipt(
    members: list[object],
    key: SigningKey,
    version: int = RECEIPT_VERSION,
    body_version: int | None = None,
) -> bytes:
    """A receipt of ``version`` over a body of ``members`` (of ``body_version``, by default
    the same), signed by ``key`` as §8.1 says, whatever the members hold (invalid cases)."""
    body = pack(members, version=version if body_version is None else body_version)
    digest = hashlib.sha256(lp(DST_RECEIPT) + body).digest()
    return pack([body, key.sign(digest)], version=version)


def make_mou(keys: Keys) -> Mou:
    rng = DeterministicRandom("xlink-release-v1/certs")
    party = {
        a: PartyKeys(keys.signing[a].verify_key, keys.sealing[a].public_key, rng(32))
        for a in (CA, US)
    }
    mou = load_sample_template().fill(party, schema_digest=SCHEMA_DIGEST)
    # The vectors' MOU names the linkage schema as it did when they were published (version 3,
    # threshold 2.886), whatever the sample template names now: they must not change with it.
    return dataclasses.replace(
        mou, approval_required=False, schema_version=3, match_threshold=2.886
    )


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
        checkpoint = recipient_checkpoint(keys, 40 + len(cases))
        receipt = issue_receipt(release, keys.signing[US], now=NOW, checkpoint=checkpoint)
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
                "receipt_checkpoint": checkpoint.to_json(),
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


def receipt_cases(keys: Keys, release: ReleaseRecord) -> list[dict[str, Any]]:
    """Receipts for the first valid release (spec §8): one without a checkpoint, which
    verifies, and the ones an originator must refuse, with the error each must give."""
    cp = recipient_checkpoint(keys, 7, prev_seq=5)
    wire = [
        bytes(cp.audit_key),
        cp.checkpoint.seq,
        cp.checkpoint.head_hash,
        NOW_US,
        cp.checkpoint.prev_seq,
        cp.checkpoint.interval,
        cp.checkpoint.signature,
    ]
    names = [
        release.release_id,
        release.session_id,
        release_digest(encode_release(release)),
        release.originator,
        release.recipient,
        NOW_US,
    ]
    us = keys.signing[US]
    forged = recipient_checkpoint(keys, 7, prev_seq=5, key=keys.signing[CA])
    forged_wire = [*wire[:6], forged.checkpoint.signature]
    out: list[tuple[str, bytes, dict[str, Any]]] = [
        ("no-checkpoint", signed_receipt([*names, None], us), {"result": "valid"}),
        (
            "version-1",
            signed_receipt(names, us, version=1),
            {"error": "ReleaseRejected", "reason": "unsupported-version"},
        ),
        (
            "signed-by-another-key",
            signed_receipt([*names, wire], keys.signing[CA]),
            {"error": "DecryptionError"},
        ),
        (
            "checkpoint-forged",
            signed_receipt([*names, forged_wire], us),
            {"error": "DecryptionError"},
        ),
        (
            "checkpoint-prev-seq-not-below-seq",
            signed_receipt([*names, [*wire[:4], 7, *wire[5:]]], us),
            {"error": "ReleaseRejected", "reason": "malformed"},
        ),
        (
            "checkpoint-seq-zero",
            signed_receipt([*names, [wire[0], 0, *wire[2:4], 0, *wire[5:]]], us),
            {"error": "ReleaseRejected", "reason": "malformed"},
        ),
        (
            "checkpoint-six-members",
            signed_receipt([*names, wire[:6]], us),
            {"error": "ReleaseRejected", "reason": "malformed"},
        ),
        (
            "checkpoint-short-key",
            signed_receipt([*names, [wire[0][:31], *wire[1:]]], us),
            {"error": "ReleaseRejected", "reason": "malformed"},
        ),
        (
            "body-version-1",
            signed_receipt([*names, wire], us, body_version=1),
            {"error": "ReleaseRejected", "reason": "unsupported-version"},
        ),
    ]
    return [{"name": name, "receipt": data.hex(), **result} for name, data, result in out]


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
            "recipient_audit_seed": keys.audit.seed().hex(),
            "source_handle_key": keys.handle.secret().hex(),
        },
        "mou": mou_to_document(mou),
        "mou_digest": mou_digest(mou).hex(),
        "valid": valid,
        "invalid": invalid_cases(keys, mou, built[0]),
        "receipts": receipt_cases(keys, built[0]),
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0] if __doc__ else None
    return vector_files.main(lambda: {OUT.name: build_vectors()}, OUT.parent, description, argv)


if __name__ == "__main__":
    raise SystemExit(main())
