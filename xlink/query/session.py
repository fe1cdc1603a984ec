"""xlink-query-v1 as two sans-I/O state machines: bytes in, events out (spec: xlink-query-v1 §7).

The asker (:class:`AskerSession`) connects to the holder (:class:`HolderSession`); the holder
answers every request in order, and only EVALUATEs may be outstanding several at a time (so
that the asker's blinding overlaps the holder's work): every other request is answered before
the next is sent.

* ``HELLO`` / ``WELCOME``: both bind the session to the MOU, the schema, the two agencies and
  the holder's key period; the session id is a hash of both nonces and those.
* ``TABLE_REQUEST`` / ``TABLE_CHUNK``... ``TABLE_END``: the table entries written since the
  version the asker holds (§5).
* ``EVALUATE`` / ``EVALUATED``: blinded elements in, evaluated elements out (RFC 9497 OPRF,
  §4); counted against the holder's daily quota.
* ``RELEASE_REQUEST`` / ``RELEASES`` / ``RECEIPTS``: for the records the asker decided, the
  holder's labelled releases and the asker's receipts.
* ``BYE`` ends the session; ``ABORT`` (either side) ends it with a code.

Like :class:`~xlink.protocol.session.PsiSession`, a session never touches a socket, a clock,
a key or a store: the caller evaluates, looks up, decides and releases. Anything the peer
should not have sent (malformed, another version, out of order, replayed, a count that
disagrees) raises :class:`~xlink.errors.RemoteProtocolError` with its code; the session is
then ABORTED with an ``ABORT`` queued for the peer (take it with :meth:`next_frame`), and
gives nothing more. A received ``ABORT`` raises :class:`~xlink.errors.PeerAborted`.
"""

from xlink.query.asker_session import AskerSession
from xlink.query.events import (
    DST_HANDLE,
    DST_SESSION,
    AskerLeft,
    EvaluationAnswered,
    EvaluationRequested,
    Fate,
    QueryConfig,
    ReceiptsReceived,
    ReleaseAnswer,
    ReleaseRequested,
    ReleasesReceived,
    RequestedHit,
    SessionState,
    TableChunkReceived,
    TableComplete,
    TableRequested,
    Welcomed,
    query_handle,
    session_id_of,
)
from xlink.query.holder_session import HolderSession

__all__ = [
    "DST_HANDLE",
    "DST_SESSION",
    "AskerLeft",
    "AskerSession",
    "EvaluationAnswered",
    "EvaluationRequested",
    "Fate",
    "HolderSession",
    "QueryConfig",
    "ReceiptsReceived",
    "ReleaseAnswer",
    "ReleaseRequested",
    "ReleasesReceived",
    "RequestedHit",
    "SessionState",
    "TableChunkReceived",
    "TableComplete",
    "TableRequested",
    "Welcomed",
    "query_handle",
    "session_id_of",
]
