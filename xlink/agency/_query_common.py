"""What both sides of the query mode share: the session configuration from the MOU, the key
period, framing helpers (xlink-query-v1; docs/query.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xlink.audit import AuditEvent
from xlink.crypto import oprf9497
from xlink.crypto.oprf9497 import OprfKey
from xlink.error_codes import AbortCode
from xlink.errors import InputError, PeerAborted, ProtocolError, RemoteProtocolError
from xlink.policy import mou_digest
from xlink.query.session import AskerSession, Fate, HolderSession, QueryConfig
from xlink.release.recipe import Fate as ReleaseFate
from xlink.transport import Connection

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = [
    "DST_PERIOD_KEY",
    "DST_TABLE_CHECK",
    "TABLE_ENTRIES_PER_SET_ELEMENT",
    "period_of",
    "table_bound",
]

DST_PERIOD_KEY: Final = b"xlink-query-v1/period-key"
"""HKDF ``info`` of the holder's per-MOU OPRF seed, derived from its sealing key (§4.2)."""
DST_TABLE_CHECK: Final = b"xlink-query-v1/table-check"
EVALUATE_CHUNK: Final = 256
"""Fewest elements per EVALUATE of a large query (a manifest goes in about eight)."""
EVALUATE_WINDOW: Final = 3
"""EVALUATEs the asker keeps outstanding, so that its blinding overlaps the holder's work."""

_FATES: Final = {
    ReleaseFate.SENT: Fate.SENT,
    ReleaseFate.QUEUED: Fate.QUEUED,
    ReleaseFate.PENDING: Fate.PENDING,
    ReleaseFate.DENIED: Fate.DENIED,
    ReleaseFate.DELIVERED: Fate.DELIVERED,
}


def period_of(now: datetime) -> str:
    """The key period of ``now``: its UTC calendar month, ``YYYY-MM`` (§4.2)."""
    return now.astimezone(UTC).strftime("%Y-%m")


PERIOD_GRACE: Final = timedelta(hours=1)
"""How long past the end of its month a session is still answered (§4.2): an officer's terminal
that kept one session open over midnight at the month's end finishes what it was doing, and no
session is answered on a month's key and table for longer."""


def period_over(period: str, now: datetime) -> bool:
    """Whether ``now`` is more than :data:`PERIOD_GRACE` past the end of ``period``."""
    return period not in (period_of(now), period_of(now - PERIOD_GRACE))


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _period_key(agency: Agency, period: str) -> OprfKey:
    """The holder's OPRF key for ``period`` under its MOU (§4.2): RFC 9497 DeriveKeyPair from a
    seed derived from the agency's sealing key, with the MOU and the period as ``info``. The
    key changes every month and with every MOU; nothing new is stored."""
    mou = agency.mou
    seed = HKDF(
        algorithm=hashes.SHA256(),
        length=oprf9497.SEED_SIZE,
        salt=mou_digest(mou),
        info=DST_PERIOD_KEY,
    ).derive(agency.keys.sealing_key.secret())
    info = _lp(mou.id.encode()) + _lp(period.encode())
    return OprfKey.derive(seed, info)


def _config(agency: Agency, *, asker: str, holder: str) -> QueryConfig:
    return QueryConfig(
        mou_id=agency.mou.id,
        mou_digest=mou_digest(agency.mou),
        schema_digest=agency.mou.schema_digest,
        keys=len(agency.schema.key_names),
        asker=asker,
        holder=holder,
    )


#: Table entries per element of the holder's largest PSI set (the MOU's ``max_set_size``): the
#: most entries an asker fetches (spec §6.5). A record has an entry per token, and a month's
#: updates add entries (a removed record's stay, as tombstones): room for both.
TABLE_ENTRIES_PER_SET_ELEMENT: Final = 4


def table_bound(agency: Agency, holder: str) -> int:
    """The most entries the holder's table may have under the agency's MOU (spec §6.5)."""
    return TABLE_ENTRIES_PER_SET_ELEMENT * agency.mou.party(holder).max_set_size


def _quota(agency: Agency) -> int:
    quota = agency.mou.query_quota_per_day
    if not quota:
        raise InputError(f"the MOU {agency.mou.id} allows no real-time queries (quota 0)")
    return quota


async def _receive(conn: Connection, idle_timeout: float) -> bytes:
    try:
        async with asyncio.timeout(idle_timeout):
            frame = await conn.receive()
    except TimeoutError:
        raise RemoteProtocolError(AbortCode.TIMEOUT, "the peer sent nothing in time") from None
    if frame is None:
        raise RemoteProtocolError(AbortCode.CONNECTION_LOST, "the peer closed the connection")
    return frame


def audit_unopened(agency: Agency, exc: BaseException | None) -> None:
    """Audit a query session that failed before it had a session id (a HELLO for other
    terms, junk as the first frame, a connection lost before WELCOME) as the batch path does:
    ``SESSION_ABORTED``, the abort code, who aborted, the peer; nothing for a session that
    ended otherwise (interrupted, or a local refusal already audited)."""
    if not isinstance(exc, ProtocolError):
        return
    code = exc.code if isinstance(exc, RemoteProtocolError) else AbortCode.INTERNAL_ERROR
    fields = {
        "code": code,
        "side": "PEER" if isinstance(exc, PeerAborted) else "LOCAL",
        "peer": agency.peer_id,
    }
    agency.audit.append(AuditEvent.SESSION_ABORTED, fields, now=agency.clock())


def _abort_for(session: HolderSession | AskerSession, exc: BaseException | None) -> bool:
    """Queue the ABORT a failure outside the session calls for (``TIMEOUT``,
    ``FRAME_TOO_LARGE``, ``TRUNCATED`` from the transport: the session saw no frame to refuse,
    so it has not aborted itself; xlink-query-v1 §7, "a check fails: ABORT sent"). Nothing
    for a lost connection (nobody to tell), a received ABORT, or a session already ended.
    Returns whether the peer is to be told (then :func:`~xlink.transport.stream.linger` after
    sending, so that the close does not reset the connection under our ABORT)."""
    if (
        isinstance(exc, RemoteProtocolError)
        and not isinstance(exc, PeerAborted)
        and exc.code is not AbortCode.CONNECTION_LOST
    ):
        session.abort(exc.code, exc.detail)
        return True
    return False


LINGER: Final = 0.75
"""Seconds at most that a query side that sent an ABORT reads what the peer still sends."""


async def _flush(conn: Connection, session: HolderSession | AskerSession) -> None:
    while (frame := session.next_frame()) is not None:
        await conn.send(frame)


_E = TypeVar("_E")


def _only(events: Sequence[object], kind: type[_E]) -> _E:
    for event in events:
        if isinstance(event, kind):
            return event
    raise RemoteProtocolError(AbortCode.UNEXPECTED_MESSAGE, f"expected {kind.__name__}")
