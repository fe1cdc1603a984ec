"""Shared builders and hypothesis strategies for the protocol tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hypothesis import strategies as st

from xlink.crypto.rand import DeterministicRandom
from xlink.crypto.suite import DEFAULT_SUITE
from xlink.linkage.tokens import TokenSet, TokenSetBuilder
from xlink.protocol.config import Mode, Role, SessionConfig
from xlink.protocol.session import PsiSession

KEYS = ("name_dob", "passport", "surname_postcode")
MOU_DIGEST = hashlib.sha256(b"test MOU").digest()
SCHEMA_DIGEST = hashlib.sha256(b"test schema").digest()


def config(
    role: Role,
    mode: Mode = Mode.PSI,
    *,
    bucket: int = 16,
    chunk: int = 8,
    suite_id: int = DEFAULT_SUITE.suite_id,
) -> SessionConfig:
    me, peer = ("RCMP", "DHS") if role is Role.INITIATOR else ("DHS", "RCMP")
    return SessionConfig(
        role=role,
        mode=mode,
        party_id=me,
        peer_id=peer,
        mou_id="MOU-TEST",
        mou_digest=MOU_DIGEST,
        schema_digest=SCHEMA_DIGEST,
        padding_bucket=bucket,
        chunk_size=chunk,
        suite_id=suite_id,
    )


def token(key: str, value: object) -> bytes:
    return hashlib.sha256(f"{key}|{value}".encode()).digest()


def token_set(records: Sequence[tuple[str, Sequence[tuple[str, object]]]]) -> TokenSet:
    """``records`` = [(record_id, [(key, plaintext value), ...]), ...]."""
    builder = TokenSetBuilder(KEYS)
    for record_id, values in records:
        builder.add_record(record_id, [(k, token(k, v)) for k, v in values])
    return builder.build()


def pair(
    tokens_a: TokenSet,
    tokens_b: TokenSet,
    mode: Mode = Mode.PSI,
    *,
    bucket: int = 16,
    chunk: int = 8,
    seed: int = 0,
    suite_id: int = DEFAULT_SUITE.suite_id,
) -> tuple[PsiSession, PsiSession]:
    a = PsiSession(
        config(Role.INITIATOR, mode, bucket=bucket, chunk=chunk, suite_id=suite_id),
        tokens_a,
        rng=DeterministicRandom(f"a{seed}"),
    )
    b = PsiSession(
        config(Role.RESPONDER, mode, bucket=bucket, chunk=chunk, suite_id=suite_id),
        tokens_b,
        rng=DeterministicRandom(f"b{seed}"),
    )
    return a, b


# Records: each has 1-3 keys with values drawn from a small pool so that collisions happen.
record_values = st.lists(
    st.tuples(st.sampled_from(KEYS), st.integers(min_value=0, max_value=12)),
    min_size=1,
    max_size=3,
    unique_by=lambda kv: kv[0],
)
record_lists = st.lists(record_values, min_size=0, max_size=8)


def records_of(
    side: str, values: list[list[tuple[str, int]]]
) -> list[tuple[str, list[tuple[str, object]]]]:
    return [(f"{side}{i}", [(k, v) for k, v in vals]) for i, vals in enumerate(values)]
