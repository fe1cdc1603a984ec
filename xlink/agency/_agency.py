"""One agency under one MOU: :class:`Agency`, the one way to run an exchange.

``xlink serve`` and ``xlink match``, both demo modes, the examples and the tests all go through
:meth:`Agency.exchange`; an in-process exchange is two agencies on a
:func:`~xlink.transport.memory_pair` (:func:`exchange_in_process`).

The class is in four parts: this module opens the agency and runs the exchange; preparing its
lists is :mod:`xlink.agency._preparing`'s, its releasing methods :mod:`xlink.agency._releasing`'s,
its real-time query mode's :mod:`xlink.agency._query_mode`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from xlink._workdir import workdir_lock
from xlink.agency._exchange import run_ended, run_exchange
from xlink.agency._opening import check_setup, record_in_force_once, record_unrecorded_runs
from xlink.agency._outcome import AgencyOutcome
from xlink.agency._preparing import Preparing
from xlink.agency._query_mode import QueryMode
from xlink.agency._releasing import Releasing
from xlink.audit import AuditEvent, AuditLog
from xlink.audit.history import apply_daily_budget, set_size_history
from xlink.crypto.keyfiles import (
    AgencyKeys,
    PublicBundle,
)
from xlink.crypto.rand import RandomSource
from xlink.crypto.suite import DEFAULT_SUITE, SUITES
from xlink.crypto.workers import GroupWorkers
from xlink.decide import FIXED, reveal_bound_for
from xlink.errors import (
    InputError,
)
from xlink.linkage.schema import LinkageSchema
from xlink.officers import OFFICERS_DIR, OfficerRegistry
from xlink.policy import Mou, mou_digest
from xlink.prepare import PreparedSide, StrPath
from xlink.progress import ProgressFn
from xlink.protocol.config import Mode, Role, SessionConfig, chunk_size_for
from xlink.release import ApprovalQueue
from xlink.store import ReleaseStore
from xlink.transport import (
    Connection,
    PeerRefused,
    connect,
    serve_once,
)

__all__ = ["Agency"]


RoleName = Literal["serve", "match"]


def _check_suite(suite_id: int) -> None:
    """Raise ``ValueError`` for a PSI ciphersuite this build does not speak."""
    if suite_id not in {s.suite_id for s in SUITES}:
        raise ValueError(f"unknown PSI ciphersuite {suite_id}")


class Agency(Preparing, QueryMode, Releasing):
    """One agency's side of exchanges with its partner under one MOU, in one working directory.

    Open with :meth:`open` and use as a context manager: it holds the workdir's lock (one run at
    a time), the audit log, the release store, the outbound ledger (approval queue), the keys,
    the MOU and the linkage schema the MOU names, a clock and a source of randomness. Then
    :meth:`prepare` the agency's files and run :meth:`exchange` over a connection (or
    :meth:`serve` / :meth:`match`, which open the pinned mutual-TLS connection first).

    Everything goes into ``workdir``: ``audit.db``, ``store.db`` (releases received),
    ``queue.db`` (the outbound ledger: releases waiting for approval, approved, sent),
    ``matches/`` (one matches file per session), ``rejects/``, ``officers/`` (the officers
    enrolled to read and approve) and ``source-handle.key`` (created on first use, mode
    0600).
    """

    def __init__(
        self,
        *,
        keys: AgencyKeys,
        mou: Mou,
        schema: LinkageSchema,
        peer_bundle: PublicBundle,
        workdir: Path,
        clock: Callable[[], datetime],
        rng: RandomSource,
        workers: int | GroupWorkers | None = None,
        suite_id: int = DEFAULT_SUITE.suite_id,
    ) -> None:
        _check_suite(suite_id)
        self.keys = keys
        self.mou = mou
        self.schema = schema
        self.peer_bundle = peer_bundle
        self.workdir = workdir
        self.clock = clock
        self.rng = rng
        self._stack = contextlib.ExitStack()
        self._audit: AuditLog | None = None
        self._store: ReleaseStore | None = None
        self._queue: ApprovalQueue | None = None
        #: The group operations of the PSI on every core (``workers`` processes, default: all
        #: cores), started on first use and stopped by :meth:`close`; or the caller's pool
        #: (a cluster's, :func:`xlink.crypto.cluster.dask_workers`), which stays the caller's.
        self._owns_workers = not isinstance(workers, GroupWorkers)
        self.workers = workers if isinstance(workers, GroupWorkers) else GroupWorkers(workers)
        #: The PSI ciphersuite this agency proposes (xlink-psi-v2 §4, §4.6; default 2). The
        #: partner must propose the same one, or the session aborts with UNSUPPORTED_SUITE.
        self.suite_id = suite_id
        #: The officers this agency enrolled (``officers/`` in the workdir): enrol with
        #: ``agency.officers.enrol(...)``; reads and approvals are checked against them.
        self.officers = OfficerRegistry(keys.agency_id, workdir / OFFICERS_DIR, (), {})

    # -- opening ---------------------------------------------------------------------------

    check = staticmethod(check_setup)

    @classmethod
    def open(
        cls,
        workdir: StrPath,
        *,
        agency: str,
        keys_dir: str | Path,
        passphrase: bytes,
        mou_path: str | Path,
        peer_bundle_path: str | Path,
        clock: Callable[[], datetime],
        rng: RandomSource,
        peer: str | None = None,
        keys: AgencyKeys | None = None,
        workers: int | GroupWorkers | None = None,
        suite_id: int = DEFAULT_SUITE.suite_id,
    ) -> Agency:
        """Check and load everything a run needs, before any partner connects.

        ``mou_path`` is a bilateral MOU, or a multilateral one with ``peer`` naming the
        partner: the agency then runs under that pair's view (:func:`~xlink.policy.pair_mou`),
        one pair under one MOU as ever. Raises :class:`~xlink.errors.InputError` (keys unusable
        or not the ones the MOU names, bundle not the partner's or not the certificate the MOU
        pins, workdir in use by another run, no ``peer`` with a multilateral MOU),
        :class:`~xlink.policy.MouRefused` (not signed by every party, expired, not naming
        ``agency`` or ``peer``, no terms for the pair) and :class:`SchemaMismatch`.
        ``workers`` is the number of processes the PSI's group operations run on (default:
        every core this process may use), or a pool of the caller's, such as a Dask cluster's
        (:func:`xlink.crypto.cluster.dask_workers`, the extra ``xlink[dask]``).
        ``suite_id`` is the PSI ciphersuite to propose
        (default :data:`~xlink.crypto.suite.DEFAULT_SUITE`, 2; 1 for a partner whose xlink
        speaks only suite 1): both parties must choose the same. Raises ``ValueError`` for a
        suite this build does not speak.
        """
        _check_suite(suite_id)  # before any key is derived
        keys, mou, schema, bundle = cls.check(
            agency=agency,
            keys_dir=keys_dir,
            passphrase=passphrase,
            mou_path=mou_path,
            peer_bundle_path=peer_bundle_path,
            today=clock().date(),
            peer=peer,
            keys=keys,
        )
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        self = cls(
            keys=keys,
            mou=mou,
            schema=schema,
            peer_bundle=bundle,
            workdir=work,
            clock=clock,
            rng=rng,
            workers=workers,
            suite_id=suite_id,
        )
        try:
            self._stack.enter_context(workdir_lock(work))
            self._audit = self._stack.enter_context(
                AuditLog.open(work / "audit.db", signing_key=keys.audit_key)
            )
            self.officers = OfficerRegistry.load(
                work / OFFICERS_DIR,
                agency_id=agency,
                agency_key=keys.signing_key.verify_key,
                audit=self._audit,
            )
            self._store = self._stack.enter_context(
                ReleaseStore.open(
                    work / "store.db",
                    mou=mou,
                    sealing_key=keys.sealing_key,
                    signing_key=keys.signing_key,
                    audit=self._audit,
                    officers=self.officers,
                )
            )
            self._queue = self._stack.enter_context(
                ApprovalQueue.open(work / "queue.db", audit=self._audit, officers=self.officers)
            )
            record_in_force_once(self)
            record_unrecorded_runs(self)
        except BaseException:
            self._stack.close()
            raise
        return self

    def close(self) -> None:
        if self._owns_workers:
            self.workers.close()
        self._stack.close()
        self._audit = self._store = self._queue = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what it holds -----------------------------------------------------------------------

    @property
    def agency_id(self) -> str:
        return self.keys.agency_id

    @property
    def peer_id(self) -> str:
        return self.mou.peer_of(self.agency_id).agency_id

    @property
    def audit(self) -> AuditLog:
        if self._audit is None:
            raise InputError("this agency is closed")
        return self._audit

    @property
    def store(self) -> ReleaseStore:
        if self._store is None:
            raise InputError("this agency is closed")
        return self._store

    @property
    def queue(self) -> ApprovalQueue:
        if self._queue is None:
            raise InputError("this agency is closed")
        return self._queue

    # -- connecting --------------------------------------------------------------------------

    def _audit_refused(self, exc: PeerRefused, role: Role) -> None:
        # The agency expected and a reason code, never certificate content or an address.
        fields = {"peer": self.peer_id, "reason": exc.reason.value, "mou": self.mou.id}
        self.audit.append(AuditEvent.PEER_REFUSED, {**fields, "role": role}, now=self.clock())

    async def serve(
        self,
        side: PreparedSide,
        host: str,
        port: int,
        *,
        timeout: float = 60.0,
        idle_timeout: float = 60.0,
        on_listening: Callable[[int], object] | None = None,
        progress: ProgressFn | None = None,
    ) -> AgencyOutcome:
        """Wait on ``host:port`` for the partner (responder), then :meth:`exchange`. Each
        refused connection is audited (``PEER_REFUSED``) and the wait goes on, until
        ``timeout``: then :class:`~xlink.transport.PeerRefused`, audited too."""
        return await self._connected(
            Role.RESPONDER,
            side,
            lambda tls: serve_once(
                host,
                port,
                **tls,
                timeout=timeout,
                on_listening=on_listening,
                on_refused=lambda exc: self._audit_refused(exc, Role.RESPONDER),
            ),
            idle_timeout,
            progress,
        )

    async def match(
        self,
        side: PreparedSide,
        host: str,
        port: int,
        *,
        timeout: float = 60.0,
        idle_timeout: float = 60.0,
        progress: ProgressFn | None = None,
    ) -> AgencyOutcome:
        """Connect to the partner at ``host:port`` (initiator), retrying until ``timeout``
        while nobody listens there, then :meth:`exchange`.
        :class:`~xlink.transport.PeerRefused` (audited) if no pinned partner answers."""
        return await self._connected(
            Role.INITIATOR,
            side,
            lambda tls: connect(host, port, **tls, timeout=timeout),
            idle_timeout,
            progress,
        )

    async def _connected(
        self,
        role: Role,
        side: PreparedSide,
        opening: Callable[[dict[str, Any]], Awaitable[Connection]],
        idle_timeout: float,
        progress: ProgressFn | None,
    ) -> AgencyOutcome:
        config = self.session_config(role)  # a spent daily budget refuses before any network
        if progress is not None:
            progress("waiting for the partner" if role is Role.RESPONDER else "connecting", 0)
        try:
            conn = await opening(self.tls_options())
        except PeerRefused as exc:
            self._audit_refused(exc, role)
            run_ended(self, "refused", None)
            raise
        except (asyncio.CancelledError, KeyboardInterrupt):  # interrupted while waiting
            run_ended(self, "interrupted", None)
            raise
        return await self.exchange(
            conn, side, config=config, idle_timeout=idle_timeout, progress=progress
        )

    def tls_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~xlink.transport.connect` and the servers: our TLS
        identity, and the partner's certificate and the pin the MOU gives for it."""
        return {
            "identity": self.keys.tls,
            "peer_cert_pem": self.peer_bundle.tls_cert_pem,
            "pinned_sha256": self.peer_bundle.tls_cert_sha256,
        }

    # -- the exchange ------------------------------------------------------------------------

    def session_config(self, role: Role) -> SessionConfig:
        """The PSI session's configuration under the MOU: its ids and digests, set-size bounds
        lowered to what the daily budget leaves (:class:`~xlink.errors.InputError` when it is
        spent, audited), and the minimal reveal."""
        own, peer = self.mou.party(self.agency_id), self.mou.peer_of(self.agency_id)
        config = SessionConfig(
            role=role,
            mode=Mode.PSI,
            party_id=self.agency_id,
            peer_id=peer.agency_id,
            mou_id=self.mou.id,
            mou_digest=mou_digest(self.mou),
            schema_digest=self.mou.schema_digest,
            padding_bucket=self.mou.padding_bucket,
            chunk_size=chunk_size_for(self.workers.on_executor),
            max_peer_set_size=peer.max_set_size,
            max_own_set_size=own.max_set_size,
            suite_id=self.suite_id,
            reveal_bound=(
                reveal_bound_for(self.schema, self.mou.match_threshold)
                if self.mou.weights == FIXED
                else None  # estimated scores are not known before the reveal
            ),
        )
        history = set_size_history(self.audit, peer.agency_id)
        return apply_daily_budget(
            config, self.mou.set_size_budget_per_day, history, self.audit, self.clock()
        )

    async def exchange(
        self,
        conn: Connection,
        side: PreparedSide,
        *,
        role: Role | None = None,
        config: SessionConfig | None = None,
        idle_timeout: float = 60.0,
        progress: ProgressFn | None = None,
    ) -> AgencyOutcome:
        """Run one whole exchange with the partner over ``conn`` and close it: the PSI session
        (xlink-psi-v2, bounded by the MOU and its daily budget, minimal reveal), the decision,
        the check that both sides decided the same pairs, the label exchange, then releases
        both ways with receipts (xlink-release-v1 §10), and the matches file.

        Safe to run again: a record version pending approval, denied, or delivered before is
        neither queued nor sent again, approved ones are sent, and a release whose content is
        already stored is receipted without storing it twice. Every end is audited
        (``RUN_ENDED``: completed, aborted, transfer-failed, interrupted).

        Give ``role``, or ``config`` (:meth:`session_config`, made before connecting).
        Raises the :class:`~xlink.errors.ProtocolError` s of the session and the transfer (each
        audited with its code), :class:`SchemaMismatch` if ``side`` was prepared with another
        schema, and :class:`~xlink.errors.InputError` for our own set above the MOU's bound or
        the daily budget used up.
        """
        return await run_exchange(
            self,
            conn,
            side,
            role=role,
            config=config,
            idle_timeout=idle_timeout,
            progress=progress,
        )
