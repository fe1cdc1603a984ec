"""Shared builders for the transport tests and the victim helper process."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from xlink.crypto.keys import SigningKey
from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.tls_certs import TlsIdentity
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.protocol import Mode, PsiSession, Role, SessionConfig

KEYS = ("name_dob", "passport")
MOU_DIGEST = hashlib.sha256(b"transport test MOU").digest()
OTHER_MOU_DIGEST = hashlib.sha256(b"another MOU").digest()
SCHEMA_DIGEST = hashlib.sha256(b"transport test schema").digest()
PARTIES = {Role.INITIATOR: ("CA-RCMP", "US-DHS"), Role.RESPONDER: ("US-DHS", "CA-RCMP")}
# Padding and chunking chosen so that every phase spans several messages (4 Elements chunks,
# 4 Reblinded chunks per side) and the session still takes milliseconds.
BUCKET = 64
CHUNK = 16


def token(key: str, value: object) -> bytes:
    return hashlib.sha256(f"{key}|{value}".encode()).digest()


def tokens_for(role: Role) -> TokenSet:
    """Records 0..39 on the initiator, 20..59 on the responder: 20 shared people."""
    start = 0 if role is Role.INITIATOR else 20
    builder = TokenSetBuilder(KEYS)
    for i in range(start, start + 40):
        builder.add_record(
            f"{role.name[0]}{i}", [("name_dob", token("name_dob", i)), ("passport", token("p", i))]
        )
    return builder.build()


def make_session(
    role: Role, *, seed: int = 0, mou_digest: bytes = MOU_DIGEST, chunk_size: int = CHUNK
) -> PsiSession:
    me, peer = PARTIES[role]
    config = SessionConfig(
        role=role,
        mode=Mode.PSI,
        party_id=me,
        peer_id=peer,
        mou_id="MOU-CA-US-TEST",
        mou_digest=mou_digest,
        schema_digest=SCHEMA_DIGEST,
        padding_bucket=BUCKET,
        chunk_size=chunk_size,
    )
    return PsiSession(config, tokens_for(role), rng=DeterministicRandom(f"{role.name}-{seed}"))


def ticking_clock(start: datetime | None = None) -> Callable[[], datetime]:
    """A clock for audit entries: one second per reading from a fixed instant."""
    ticks = itertools.count()
    origin = start or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    return lambda: origin + timedelta(seconds=next(ticks))


def audit_key(name: str) -> SigningKey:
    """A deterministic audit-log signing key (tests only)."""
    return SigningKey(hashlib.sha256(f"transport audit key {name}".encode()).digest())


@dataclass(frozen=True)
class Identities:
    ca: TlsIdentity  # the initiator, CA-RCMP
    us: TlsIdentity  # the responder, US-DHS
    intruder: TlsIdentity  # a valid certificate that no MOU names
    ca_expired: TlsIdentity  # CA-RCMP's key, but a certificate that expired yesterday
    ca_twin: TlsIdentity  # CA-RCMP's key, valid, re-issued: same key, other fingerprint
