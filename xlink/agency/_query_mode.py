"""The real-time query mode's half of :class:`~xlink.agency.Agency` (xlink-query-v1,
docs/query.md): serving the partner's queries about our list, and asking about travellers of
ours. What each side does in a session is :mod:`xlink.agency._query`; these methods open the
pinned mutual-TLS connections around it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

from xlink.agency._query import QueryClient, QueryOutcome, QueryServed, QueryService
from xlink.errors import ProtocolError
from xlink.prepare import PreparedSide
from xlink.progress import ProgressFn
from xlink.protocol.config import Role
from xlink.transport import Connection, PeerRefused, connect, serve_pinned

if TYPE_CHECKING:
    from xlink.agency._agency import Agency

__all__ = ["QueryMode"]


class QueryMode:
    """The query-mode methods of :class:`~xlink.agency.Agency`, which inherits them."""

    def _agency(self) -> Agency:
        return cast("Agency", self)

    def query_service(
        self, side: PreparedSide, *, progress: ProgressFn | None = None, lazy: bool = False
    ) -> QueryService:
        """The holder's :class:`~xlink.agency.QueryService` for ``side`` (this agency's list):
        the month's table built, or loaded and updated with the list's changes. ``lazy``: the
        first session makes it instead, on a worker thread (a server that makes a service per
        connection keeps its event loop free meanwhile)."""
        return QueryService(self._agency(), side, progress=progress, lazy=lazy)

    async def serve_queries(
        self,
        side: PreparedSide | QueryService,
        host: str,
        port: int,
        *,
        max_connections: int | None = None,
        idle_timeout: float = 60.0,
        on_listening: Callable[[int], object] | None = None,
        progress: ProgressFn | None = None,
        on_served: Callable[[QueryServed], object] | None = None,
    ) -> int:
        """Answer the partner's real-time queries about ``side`` (our list, or a
        :meth:`query_service` already built for it) on ``host:port`` until cancelled (or
        ``max_connections`` served): every connection over pinned mutual TLS, each refused one
        audited. ``on_served`` is called with each session's counts once it has ended,
        completed or not (the operator's log line). Returns the connections served."""
        agency = self._agency()
        service = (
            side
            if isinstance(side, QueryService)
            else QueryService(agency, side, progress=progress)
        )

        async def answer(conn: Connection) -> None:
            served = QueryServed()
            try:
                with contextlib.suppress(ProtocolError):  # audited by the service
                    await service.handle(conn, idle_timeout=idle_timeout, served=served)
            finally:
                if on_served is not None:
                    on_served(served)

        return await serve_pinned(
            host,
            port,
            **agency.tls_options(),
            on_connection=answer,
            on_listening=on_listening,
            on_refused=lambda exc: agency._audit_refused(exc, Role.RESPONDER),
            max_connections=max_connections,
        )

    @contextlib.asynccontextmanager
    async def query_session(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 60.0,
        idle_timeout: float = 60.0,
        progress: ProgressFn | None = None,
    ) -> AsyncIterator[QueryClient]:
        """An open query session with the partner's query server at ``host:port`` (pinned
        mutual TLS), its table copy brought up to date: ``async with agency.query_session(h,
        p) as client: outcome = await client.ask(travellers)``, as often as needed."""
        agency = self._agency()
        options: dict[str, Any] = agency.tls_options()
        try:
            conn = await connect(host, port, **options, timeout=timeout)
        except PeerRefused as exc:
            agency._audit_refused(exc, Role.INITIATOR)
            raise
        async with QueryClient(agency, conn, idle_timeout=idle_timeout, progress=progress) as c:
            yield c

    async def ask(
        self,
        travellers: PreparedSide,
        host: str,
        port: int,
        *,
        timeout: float = 60.0,
        idle_timeout: float = 60.0,
        progress: ProgressFn | None = None,
    ) -> QueryOutcome:
        """Ask the partner's query server at ``host:port`` about ``travellers`` (records of
        ours: one traveller or a manifest) in one session; returns a
        :class:`~xlink.agency.QueryOutcome`. Releases of decided matches go into our store,
        as in an exchange."""
        async with self.query_session(
            host, port, timeout=timeout, idle_timeout=idle_timeout, progress=progress
        ) as client:
            return await client.ask(travellers)
