"""Building our Hello and checking the peer's (spec: xlink-psi-v2 §6.4, §5.2).

The checks run in a fixed order so that two implementations abort a bad Hello with the same
code: role, suite, mode, MOU (id, digest, padding bucket), schema, parties, set size.
"""

from __future__ import annotations

from xlink.errors import RemoteProtocolError
from xlink.protocol import limits as L
from xlink.protocol.abort import AbortCode
from xlink.protocol.config import SessionConfig
from xlink.protocol.messages import Hello

__all__ = ["check_peer_hello", "make_hello"]


def make_hello(config: SessionConfig, *, padded_size: int, nonce: bytes) -> Hello:
    """Our Hello for ``config`` declaring ``padded_size`` elements (spec §6.4)."""
    return Hello(
        role=config.role.value,
        suite_id=config.suite_id,
        mode=config.mode.value,
        sender_id=config.party_id,
        receiver_id=config.peer_id,
        mou_id=config.mou_id,
        mou_digest=config.mou_digest,
        schema_digest=config.schema_digest,
        padding_bucket=config.padding_bucket,
        padded_size=padded_size,
        chunk_size=config.chunk_size,
        nonce=nonce,
    )


def check_peer_hello(config: SessionConfig, hello: Hello) -> None:
    """Raise :class:`~xlink.errors.RemoteProtocolError` with the first failing check's code
    (spec §6.4 table "Hello checks"); return None if the peer's Hello agrees with ``config``."""

    def fail(code: AbortCode, detail: str) -> RemoteProtocolError:
        return RemoteProtocolError(code, detail)

    if hello.role == config.role.value:
        raise fail(AbortCode.ROLE_MISMATCH, "peer claims our role")
    if hello.suite_id != config.suite_id:
        raise fail(AbortCode.UNSUPPORTED_SUITE, "ciphersuite differs")
    if hello.mode != config.mode.value:
        raise fail(AbortCode.MODE_MISMATCH, "mode differs")
    if hello.mou_id != config.mou_id:
        raise fail(AbortCode.MOU_MISMATCH, "MOU id differs")
    if hello.mou_digest != config.mou_digest:
        raise fail(AbortCode.MOU_MISMATCH, "MOU digest differs")
    if hello.padding_bucket != config.padding_bucket:
        raise fail(AbortCode.MOU_MISMATCH, "padding bucket differs")
    if hello.schema_digest != config.schema_digest:
        raise fail(AbortCode.SCHEMA_MISMATCH, "linkage schema digest differs")
    if hello.sender_id != config.peer_id or hello.receiver_id != config.party_id:
        raise fail(AbortCode.PARTY_MISMATCH, "party ids differ")
    if hello.padded_size % hello.padding_bucket or hello.padded_size > L.MAX_SET_SIZE:
        raise fail(AbortCode.BAD_SET_SIZE, "padded size not allowed by the bucket rule")
    if hello.padded_size > config.max_peer_set_size:
        raise fail(AbortCode.BAD_SET_SIZE, "padded size above the MOU's bound for the peer")
