"""Running a :class:`~xlink.protocol.PsiSession` over a connection (docs/transport.md).

:func:`run_session` is the loop of docs/embedding.md made real: a reader task keeps reading, so
neither side's writes can block on the other; frames that have arrived are delivered before
more are produced; a silent or vanished peer ends the session with ``TIMEOUT`` or
``CONNECTION_LOST`` within the idle timeout; every event and error goes to the auditor; the
connection is always closed. :mod:`xlink.transport.connect` opens the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Protocol, TypeVar

from xlink.error_codes import LOCAL_FAILURE
from xlink.errors import LocalProtocolError, ProtocolError, RemoteProtocolError, XlinkError
from xlink.protocol import State
from xlink.protocol.abort import AbortCode
from xlink.protocol.config import Role
from xlink.protocol.events import Aborted, CardinalityResult, Event, PsiResult
from xlink.protocol.limits import MAX_MESSAGE_SIZE
from xlink.protocol.session import PsiSession
from xlink.transport.errors import ConnectionLost, PeerAborted, TransportTimeout
from xlink.transport.stream import Connection, linger

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "LIMIT_GRACE_IDLES",
    "MIN_PACE",
    "SessionObserver",
    "run_session",
    "session_time_limit",
    "time_limit",
    "within_limit",
]

Result = PsiResult | CardinalityResult

DEFAULT_MAX_BUFFERED: Final = 16 * MAX_MESSAGE_SIZE
"""Bytes of received, undelivered messages past which the reader stops reading (so TCP flow
control pushes back on the peer). Far above the two frames in flight that the loop needs."""

_Item = bytes | None | Exception
_T = TypeVar("_T")

MIN_PACE: Final = 250.0
"""The least pace, in padded elements of both sets per second, that a session is given once the
peer's Hello has declared its size (:func:`session_time_limit`). The idle timeout restarts with
every message, so on its own it lets a peer that sends one small message inside each timeout
(an Elements chunk of one element, say) hold the session for as many timeouts as it has
messages; the limit ends such a session. An honest session here runs at about 7,000 elements
a second and more (docs/PERFORMANCE.md), so the pace is far below any honest one."""

LIMIT_GRACE_IDLES: Final = 10
"""Idle timeouts added to a session's time limit, for the start and a slow end."""


async def within_limit(waiting: Awaitable[_T], limit_s: float, what: str) -> _T:
    """Await ``waiting``, given up with :class:`TransportTimeout` (``TIMEOUT``) once
    ``limit_s`` seconds have passed, however often the peer sends meanwhile; ``what`` names
    the step in the error."""
    try:
        async with asyncio.timeout(limit_s) as limit:
            return await waiting
    except TimeoutError:
        if not limit.expired():
            raise
        raise TransportTimeout(f"{what} ran past its time limit of {limit_s:.0f} s") from None


def time_limit(work: int, idle_timeout: float, min_pace: float) -> float:
    """Seconds a step of ``work`` units (elements, table entries, decided matches) may take in
    all, counted from its start: ``LIMIT_GRACE_IDLES`` idle timeouts, plus the work at
    ``min_pace`` units a second. ``ValueError`` for a pace that is not positive."""
    if min_pace <= 0:
        raise ValueError("the pace must be > 0")
    return LIMIT_GRACE_IDLES * idle_timeout + work / min_pace


def session_time_limit(own: int, peer: int, idle_timeout: float, min_pace: float) -> float:
    """Seconds a session of padded sizes ``own`` and ``peer`` may take in all (:func:`time_limit`
    of both sets, ``min_pace`` elements a second)."""
    return time_limit(own + peer, idle_timeout, min_pace)


class SessionObserver(Protocol):
    """What :func:`run_session` tells as the session runs: the events of every message
    received, and the error that aborted it. :class:`~xlink.audit.session.SessionAuditor`
    writes them to the audit log; a benchmark may time them."""

    def record(self, events: Iterable[Event]) -> None: ...

    def record_error(self, error: ProtocolError) -> None: ...


class _Inbox:
    """Messages read but not yet delivered, in order; the reader waits while more than
    ``high_water`` bytes are queued."""

    def __init__(self, high_water: int) -> None:
        self._items: deque[_Item] = deque()
        self._size = 0
        self._high = high_water
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    @property
    def ready(self) -> bool:
        return bool(self._items)

    async def put(self, item: _Item) -> None:
        self._items.append(item)
        self._size += len(item) if isinstance(item, bytes) else 0
        self._arrived.set()
        if self._size > self._high:
            self._room.clear()
            await self._room.wait()

    def pop(self) -> _Item:
        item = self._items.popleft()
        self._size -= len(item) if isinstance(item, bytes) else 0
        if self._size <= self._high:
            self._room.set()
        return item

    async def wait(self) -> None:
        """Return once a message is ready."""
        while not self._items:
            self._arrived.clear()
            await self._arrived.wait()

    async def get(self) -> _Item:
        await self.wait()
        return self.pop()


async def _read_all(conn: Connection, inbox: _Inbox) -> None:
    try:
        while True:
            message = await conn.receive()
            await inbox.put(message)
            if message is None:
                return
    except Exception as exc:  # handed to the driver, which raises it in order
        await inbox.put(exc)


async def run_session(
    session: PsiSession,
    conn: Connection,
    *,
    auditor: SessionObserver | None = None,
    idle_timeout: float,
    abort_timeout: float = 1.0,
    max_buffered: int = DEFAULT_MAX_BUFFERED,
    min_pace: float = MIN_PACE,
) -> Result:
    """Run ``session`` to completion over ``conn`` and return its result; always close ``conn``.

    Calls ``initiate()`` for an initiator that has not started. ``idle_timeout`` bounds each
    wait for the peer when this side has nothing to send. Every event list the session returns
    goes to ``auditor.record`` and every error this side detects to ``auditor.record_error``.
    When this side aborts, sending the Abort, reading (and dropping) what the peer still sends
    until it closes or is quiet for a moment, and closing together take at most
    ``abort_timeout``, so a silent peer is given up within ``idle_timeout + abort_timeout``.
    Once the peer's Hello has declared its size, the whole session is also bounded by
    :func:`session_time_limit` (``min_pace`` elements a second), so that a peer sending a
    little inside each idle timeout cannot hold it open for longer: ``TIMEOUT`` too.

    Raises (the session is then ABORTED and has no result):

    - :class:`~xlink.errors.RemoteProtocolError` — the peer misbehaved (its Abort was sent
      first, within ``abort_timeout``); this includes :class:`TransportTimeout` (``TIMEOUT``:
      idle, read or write timeout, or the session's time limit; an Abort is attempted) and
      :class:`ConnectionLost`
      (``CONNECTION_LOST``: end of stream, reset or TLS alert before the session was done);
    - :class:`PeerAborted` — the peer sent an Abort; ``code`` is its reason;
    - :class:`~xlink.protocol.InternalProtocolError` — a local failure (Abort sent);
    - ``LocalProtocolError`` if the session was already finished; ``ValueError`` for a
      non-positive timeout.
    """
    if idle_timeout <= 0 or abort_timeout <= 0 or min_pace <= 0:
        raise ValueError("timeouts and the pace must be > 0")
    if session.done:
        raise LocalProtocolError("session is already finished")
    if session.role is Role.INITIATOR and session.state is State.IDLE:
        session.initiate()
    loop = asyncio.get_running_loop()
    inbox = _Inbox(max_buffered)
    reading = asyncio.create_task(_read_all(conn, inbox))
    deadline: float | None = None  # set when this side aborts: bounds the Abort and the close
    try:
        await _drive_within_limit(session, conn, inbox, idle_timeout, auditor, min_pace)
    except PeerAborted:
        raise  # already recorded from the Aborted event; an Abort is never answered
    except ProtocolError as exc:
        deadline = loop.time() + abort_timeout
        await _abort(session, conn, exc, auditor, abort_timeout)
        if not isinstance(exc, ConnectionLost) and not reading.done():
            # Keep a quarter of the budget for the close itself.
            await linger(inbox.get, deadline - loop.time() - abort_timeout / 4)
        raise
    finally:
        reading.cancel()
        await asyncio.wait([reading])
        if deadline is None:
            await conn.close()
        else:
            await conn.close(timeout=max(0.0, deadline - loop.time()))
    if session.result is None:  # pragma: no cover - _drive returns only when complete
        raise LocalProtocolError("session finished without a result")
    return session.result


async def _drive_within_limit(
    session: PsiSession,
    conn: Connection,
    inbox: _Inbox,
    idle_timeout: float,
    auditor: SessionObserver | None,
    min_pace: float,
) -> None:
    """:func:`_drive`, given up with ``TIMEOUT`` at the session's time limit, which is set once
    the peer's Hello has declared its size."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    limit_s = 0.0

    def set_limit() -> None:
        nonlocal limit_s
        if limit.when() is None and session.peer_padded_size:
            limit_s = session_time_limit(
                session.padded_size, session.peer_padded_size, idle_timeout, min_pace
            )
            limit.reschedule(start + limit_s)

    try:
        async with asyncio.timeout(None) as limit:
            await _drive(session, conn, inbox, idle_timeout, auditor, set_limit)
    except TimeoutError:
        if not limit.expired():
            raise
        raise TransportTimeout(
            f"the session ran past its time limit of {limit_s:.0f} s for its set sizes"
        ) from None


async def _drive(
    session: PsiSession,
    conn: Connection,
    inbox: _Inbox,
    idle_timeout: float,
    auditor: SessionObserver | None,
    delivered: Callable[[], None],
) -> None:
    """Run ``session`` until it is done; ``delivered()`` after each message delivered."""

    def deliver(item: _Item) -> None:
        _deliver(session, item, auditor)
        delivered()

    while not session.done:
        # Deliver whatever has arrived before producing more of our own.
        while inbox.ready and not session.done:
            deliver(inbox.pop())
        if session.done:
            break
        message = session.next_message()  # at most one chunk of work
        if message is not None:
            await _send(session, conn, message, inbox, deliver)
            # send() returns without suspending while the stream has room, so without this the
            # reader task would not run until every own chunk was sent: the peer, unread, would
            # stall on its own sends and the two parties would work in turns, not together.
            await asyncio.sleep(0)
            continue
        try:
            async with asyncio.timeout(idle_timeout):
                item = await inbox.get()
        except TimeoutError:
            raise TransportTimeout(f"no message from the peer for {idle_timeout:g} s") from None
        deliver(item)
    while (message := session.next_message()) is not None:
        await conn.send(message)  # our last messages
    if session.result is None:  # pragma: no cover - a completed session has a result
        raise LocalProtocolError("session finished without a result")


async def _send(
    session: PsiSession,
    conn: Connection,
    message: bytes,
    inbox: _Inbox,
    deliver: Callable[[_Item], None],
) -> None:
    """Send ``message``, delivering what arrives while the send waits for the peer to read.

    Both parties send more than their buffers hold in the confirmation round (every chunk of
    claims is answered). A party that only waited for its send would stop delivering, its
    reader would stop reading once the inbox is full, and a peer doing the same would wait on
    it in turn: both sides stalled on sends. Delivering meanwhile keeps our side reading. The
    messages it makes the session produce are sent after this one, so the order on the wire
    is the session's.
    """
    sending = asyncio.ensure_future(conn.send(message))
    try:
        while not sending.done():
            if session.done:  # nothing more to deliver (and a ready inbox must not spin us)
                await asyncio.wait((sending,))
                break
            if inbox.ready:
                deliver(inbox.pop())
                continue
            arrival = asyncio.ensure_future(inbox.wait())
            try:
                await asyncio.wait((sending, arrival), return_when=asyncio.FIRST_COMPLETED)
            finally:
                arrival.cancel()
        sending.result()  # what the send raised
    finally:
        if not sending.done():  # a delivery raised, or we were cancelled: stop the send
            sending.cancel()
            await asyncio.wait((sending,))  # a cancel of our own caller still propagates
        if not sending.cancelled():
            sending.exception()  # seen: the error being raised is the one that counts


def _deliver(session: PsiSession, item: _Item, auditor: SessionObserver | None) -> None:
    if isinstance(item, Exception):
        raise item
    if item is None:
        raise ConnectionLost("peer closed the connection")
    events = session.receive_message(item)
    if auditor is not None:
        auditor.record(events)
    for event in events:
        if isinstance(event, Aborted) and event.by_peer:
            raise PeerAborted(event.code, event.detail)


async def _abort(
    session: PsiSession,
    conn: Connection,
    error: ProtocolError,
    auditor: SessionObserver | None,
    timeout: float,
) -> None:
    """Abort the session for ``error`` (unless it already did), record it, tell the peer."""
    if not session.done:
        if isinstance(error, RemoteProtocolError):
            session.abort(error.code, error.detail)
        else:
            session.abort(AbortCode.INTERNAL_ERROR, LOCAL_FAILURE)
    if auditor is not None:
        auditor.record_error(error)
    if isinstance(error, ConnectionLost):
        return  # nobody left to tell
    with contextlib.suppress(XlinkError, TimeoutError):
        async with asyncio.timeout(timeout):
            while (message := session.next_message()) is not None:
                await conn.send(message)
