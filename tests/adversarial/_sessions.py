"""The session configuration the PSI attack tests share: the victim and the attacker of one
MOU and schema, either role."""

from __future__ import annotations

import hashlib

from xlink.protocol import Mode, Role, SessionConfig

MOU_DIGEST = hashlib.sha256(b"adversarial MOU").digest()
SCHEMA_DIGEST = hashlib.sha256(b"adversarial schema").digest()
BUCKET, CHUNK = 16, 8


def psi_config(role: Role, **extra: object) -> SessionConfig:
    """A PSI-mode configuration for ``role`` (RCMP initiates, DHS responds), padding bucket
    :data:`BUCKET` and chunk :data:`CHUNK` unless ``extra`` says otherwise."""
    me, peer = ("RCMP", "DHS") if role is Role.INITIATOR else ("DHS", "RCMP")
    settings: dict[str, object] = {"padding_bucket": BUCKET, "chunk_size": CHUNK, **extra}
    return SessionConfig(
        role=role,
        mode=Mode.PSI,
        party_id=me,
        peer_id=peer,
        mou_id="MOU-ADV",
        mou_digest=MOU_DIGEST,
        schema_digest=SCHEMA_DIGEST,
        **settings,  # type: ignore[arg-type]
    )
