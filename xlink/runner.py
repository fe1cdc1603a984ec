"""One agency's whole exchange over the network, in one call: what ``xlink serve`` and
``xlink match`` run (docs/quickstart.md, "Two machines").

:func:`run_agency` loads the agency's keys, accepts the signed MOU, prepares the agency's files
with the MOU's linkage schema, opens the audit log, connects to the peer (``match``) or waits for
it (``serve``) over mutual TLS pinned by the MOU, runs the PSI session (xlink-psi-v2, with the
MOU's set-size bounds, lowered to what its daily budget leaves, and a minimal reveal), decides
matches, compares the decided pairs with the peer's, then exchanges labelled, sealed releases
and their receipts over the same connection ("release transfer v1", xlink-release-v1 §10,
docs/transport.md), verifies its audit log and returns the counts.

Everything the run writes goes into ``workdir``: ``audit.db``, ``store.db`` (releases
received), ``queue.db`` (releases waiting for approval when the MOU requires it), ``rejects/``
(rejected rows) and ``source-handle.key`` (the originator-only source handle key, created on
first use, mode 0600).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from xlink._workdir import one_run_per_workdir
from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.audit.history import SetSizeHistory, apply_daily_budget, set_size_history
from xlink.audit.session import SessionAuditor
from xlink.crypto.keyfiles import AgencyKeys, load_public_bundle
from xlink.crypto.rand import RandomSource
from xlink.decide import decide, reveal_bound_for
from xlink.errors import DecryptionError, InputError, RemoteProtocolError, XlinkError
from xlink.linkage.schema import load_default_schema, schema_digest
from xlink.policy import accept_mou, load_mou, mou_digest
from xlink.prepare import StrPath, prepare_side
from xlink.protocol.config import Mode, Role, SessionConfig
from xlink.protocol.events import Event, Progress, PsiResult
from xlink.protocol.limits import HANDLE_SIZE
from xlink.protocol.session import PsiSession
from xlink.release import ApprovalQueue, SourceHandleKey, release_decided
from xlink.release.label import (
    LabelError,
    LabelNotMatched,
    labelled_handles,
    open_labelled,
    seal_labelled,
)
from xlink.release.receipt import verify_receipt
from xlink.store import ReleaseStore
from xlink.store.reasons import DENY_LABEL_FAILED, DENY_NOT_DECIDED
from xlink.store.store import DecidedMatches
from xlink.transport import PeerRefused, RefusalReason, connect, run_session, serve_once
from xlink.transport.release_transfer import (
    TransferGate,
    agree_decided_pairs,
    exchange_labels,
    label_handles,
    transfer_releases,
)

__all__ = [
    "PEER_REFUSAL_REASONS",
    "AgencyOutcome",
    "SchemaMismatch",
    "refusal_reason",
    "run_agency",
]

RoleName = Literal["serve", "match"]

PEER_REFUSAL_REASONS: Final = frozenset(r.value for r in RefusalReason)
"""The ``reason`` values of a ``PEER_REFUSED`` audit entry: the transport's refusal reasons."""


class SchemaMismatch(InputError):
    """The linkage schema this side would use is not the one the MOU's digest names."""


@dataclass(frozen=True, slots=True)
class AgencyOutcome:
    """What one agency's run did: counts only, never a record."""

    agency: str
    peer: str
    role: str
    mou_id: str
    session_id: str
    records: int
    rejected: int
    tokens: int
    matched_tokens: int
    candidates: int
    decided: int
    approval_required: bool
    released: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    denied: int = 0
    received: dict[str, int] = field(default_factory=dict)
    refused_by_us: int = 0
    receipts_verified: int = 0
    refused_by_peer: int = 0
    audit_ok: bool = False
    audit_entries: int = 0
    audit_reason: str | None = None
    workdir: str = ""

    @property
    def released_total(self) -> int:
        return sum(self.released.values())

    @property
    def received_total(self) -> int:
        return sum(self.received.values())

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc["released_total"] = self.released_total
        doc["received_total"] = self.received_total
        return doc


# -- the run --------------------------------------------------------------------------------


class _ProgressAuditor(SessionAuditor):
    """A session auditor that also reports the session's Progress events."""

    def __init__(
        self,
        audit: AuditLog,
        session: PsiSession,
        *,
        own_tokens: int,
        clock: Callable[[], datetime],
        progress: Callable[[str, int], None] | None,
        history: SetSizeHistory | None = None,
    ) -> None:
        super().__init__(audit, session, own_tokens=own_tokens, clock=clock, history=history)
        self._progress = progress

    def record(self, events: Iterable[Event]) -> None:
        events = list(events)
        super().record(events)
        if self._progress is not None:
            for event in events:
                if isinstance(event, Progress):
                    self._progress(f"PSI {event.phase.replace('_', ' ')}", event.done)


def refusal_reason(error: PeerRefused) -> str:
    """The machine-readable reason of a refused or absent peer (one of
    :data:`PEER_REFUSAL_REASONS`), for the audit log and ``--json`` output."""
    return error.reason.value


def _handle_key(path: Path, rng: RandomSource) -> SourceHandleKey:
    if path.exists():
        raw = path.read_text(encoding="ascii").strip()
        try:
            return SourceHandleKey(bytes.fromhex(raw))
        except ValueError:
            raise InputError(f"{path}: not a 32-byte source handle key in hex") from None
    key = SourceHandleKey.generate(rng)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.secret().hex() + "\n")
    return key


@one_run_per_workdir
async def run_agency(
    role: RoleName,
    *,
    agency: str,
    files: Sequence[StrPath],
    keys_dir: str | Path,
    passphrase: bytes,
    mou_path: str | Path,
    peer_bundle_path: str | Path,
    host: str,
    port: int,
    workdir: StrPath,
    now_clock: Callable[[], datetime],
    rng: RandomSource,
    timeout: float = 60.0,
    idle_timeout: float = 60.0,
    on_listening: Callable[[int], object] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> AgencyOutcome:
    """Run one agency's exchange: ``serve`` waits on ``host:port`` for the peer (responder),
    ``match`` connects to it (initiator). See the module docstring for what is written where.

    Raises :class:`~xlink.policy.MouRefused` (the MOU is not signed by both, expired, or does
    not name ``agency``), :class:`SchemaMismatch`, :class:`~xlink.errors.InputError` (keys,
    bundle or files unusable, keys that are not the ones the MOU names, our own set above the
    MOU's bound, or the MOU's daily set-size budget used up),
    :class:`~xlink.transport.PeerRefused` (``match``: TLS or pin refused, connection failed;
    ``serve``: no authenticated peer within ``timeout``, each refused connection before it
    audited as ``PEER_REFUSED`` with :func:`refusal_reason`), the
    :class:`~xlink.errors.ProtocolError` s of :func:`~xlink.transport.run_session`
    (``CONFIRMATION_FAILED``, ``BAD_COMMITMENT``, ``BAD_SET_SIZE``, ...) and the release
    transfer's ``TransferError`` / ``DecisionMismatch``, each audited with its code.
    """
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    keys = AgencyKeys.load(keys_dir, passphrase)
    if keys.agency_id != agency:
        raise InputError(f"{keys_dir}: holds the keys of {keys.agency_id}, not {agency}")
    mou = accept_mou(load_mou(mou_path), local_agency=agency, today=now_clock().date())
    own, peer = mou.party(agency), mou.peer_of(agency)
    if own.tls_cert_sha256 != keys.tls.fingerprint or own.verify_key != (
        keys.signing_key.verify_key
    ):
        raise InputError(f"{keys_dir}: these keys are not the ones the MOU names for {agency}")
    bundle = load_public_bundle(peer_bundle_path)
    if bundle.agency_id != peer.agency_id:
        raise InputError(
            f"{peer_bundle_path}: a bundle for {bundle.agency_id}, not {peer.agency_id}"
        )
    if bundle.tls_cert_sha256 != peer.tls_cert_sha256:
        raise InputError(
            f"{peer_bundle_path}: its TLS certificate is not the one the MOU pins for "
            f"{peer.agency_id}"
        )
    schema = load_default_schema()
    if (schema.id, schema.version) != (mou.schema_id, mou.schema_version) or schema_digest(
        schema
    ) != mou.schema_digest:
        raise SchemaMismatch(
            f"the MOU names linkage schema {mou.schema_id} v{mou.schema_version} "
            f"({mou.schema_digest.hex()[:16]}…); this xlink has {schema.id} v{schema.version} "
            f"({schema_digest(schema).hex()[:16]}…)"
        )
    side = prepare_side(list(files), schema=schema, rejects_dir=work / "rejects", progress=progress)
    handle_key = _handle_key(work / "source-handle.key", rng)
    audit_path = work / "audit.db"
    psi_role = Role.RESPONDER if role == "serve" else Role.INITIATOR
    config = SessionConfig(
        role=psi_role,
        mode=Mode.PSI,
        party_id=agency,
        peer_id=peer.agency_id,
        mou_id=mou.id,
        mou_digest=mou_digest(mou),
        schema_digest=mou.schema_digest,
        padding_bucket=mou.padding_bucket,
        max_peer_set_size=peer.max_set_size,
        max_own_set_size=own.max_set_size,
        reveal_bound=reveal_bound_for(schema, mou.match_threshold),
    )
    with contextlib.ExitStack() as stack:
        audit = stack.enter_context(AuditLog.open(audit_path, signing_key=keys.signing_key))
        history = set_size_history(audit, peer.agency_id)
        config = apply_daily_budget(
            config, mou.set_size_budget_per_day, history, audit, now_clock()
        )
        store = stack.enter_context(
            ReleaseStore.open(
                work / "store.db",
                mou=mou,
                sealing_key=keys.sealing_key,
                signing_key=keys.signing_key,
                audit=audit,
            )
        )
        queue = (
            stack.enter_context(ApprovalQueue.open(work / "queue.db", audit=audit))
            if mou.approval_required
            else None
        )
        if progress is not None:
            progress("waiting for the peer" if role == "serve" else "connecting", 0)

        def audit_refused(exc: PeerRefused) -> None:
            # The agency expected and a reason code, never certificate content. Under `serve`
            # a refused connection does not end the wait: each one is audited.
            audit.append(
                AuditEvent.PEER_REFUSED,
                {
                    "peer": peer.agency_id,
                    "reason": refusal_reason(exc),
                    "mou": mou.id,
                    "role": psi_role,
                },
                now=now_clock(),
            )

        try:
            if role == "serve":
                conn = await serve_once(
                    host,
                    port,
                    identity=keys.tls,
                    peer_cert_pem=bundle.tls_cert_pem,
                    pinned_sha256=peer.tls_cert_sha256,
                    timeout=timeout,
                    on_listening=on_listening,
                    on_refused=audit_refused,
                )
            else:
                conn = await connect(
                    host,
                    port,
                    identity=keys.tls,
                    peer_cert_pem=bundle.tls_cert_pem,
                    pinned_sha256=peer.tls_cert_sha256,
                    timeout=timeout,
                )
        except PeerRefused as exc:
            # No session started, so no SessionAuditor: record the refused (or absent) peer.
            audit_refused(exc)
            raise
        gate = TransferGate(conn)
        try:
            try:
                session = PsiSession(config, side.tokens, rng=rng)
            except ValueError as exc:  # e.g. our own set above the MOU's bound
                raise InputError(f"cannot start the session: {exc}") from None
            auditor = _ProgressAuditor(
                audit,
                session,
                own_tokens=len(side.tokens),
                clock=now_clock,
                progress=progress,
                history=history,
            )
            result = await run_session(session, gate, auditor=auditor, idle_timeout=idle_timeout)
            if not isinstance(result, PsiResult):  # pragma: no cover - Mode.PSI
                raise InputError("the session did not produce a PSI result")
            decision = decide(result, schema, mou.match_threshold)
            session_id = result.session_id
            decided_handles = [m.handles for m in decision.matches]

            def transfer_aborted(exc: RemoteProtocolError) -> None:
                # The session completed but its release transfer did not: audit the code.
                fields = {"code": exc.code, "side": "LOCAL", "session": session_id}
                audit.append(
                    AuditEvent.SESSION_ABORTED, {**fields, "peer": peer.agency_id}, now=now_clock()
                )

            try:
                # Both sides must have decided the same pairs before anything is released.
                await agree_decided_pairs(gate, session_id, decided_handles, idle_timeout)
                # Then the key material of the labels, for the decided pairs' tokens only.
                peer_outputs = await exchange_labels(
                    gate,
                    label_handles(decided_handles),
                    request=session.labels.request,
                    answer=session.labels.answer,
                    outputs=session.labels.outputs,
                    idle_timeout=idle_timeout,
                )
            except RemoteProtocolError as exc:
                transfer_aborted(exc)
                raise
            if progress is not None:
                progress("releasing", 0)
            now = now_clock()
            batch = release_decided(
                decision,
                side.records,
                mou=mou,
                originator=agency,
                signing_key=keys.signing_key,
                handle_key=handle_key,
                rng=rng,
                now=now,
                queue=queue,
                audit=audit,
            )
            refused_by_us = 0
            expected = DecidedMatches(decided_handles)  # each decided match takes one release

            def refuse_label(named: tuple[bytes, ...], reason: str) -> tuple[bool, bytes]:
                nonlocal refused_by_us
                refused_by_us += 1
                # The first handle the frame names stands for the release (its id is inside).
                first = named[0] if named and len(named[0]) == HANDLE_SIZE else bytes(HANDLE_SIZE)
                fields = {"session": session_id, "handle": first, "reason": reason}
                audit.append(
                    AuditEvent.RECEIVE_DENIED, {**fields, "peer": peer.agency_id}, now=now_clock()
                )
                return False, reason.encode("ascii")

            def store_one(frame: bytes) -> tuple[bool, bytes]:
                nonlocal refused_by_us
                # A release opens only with the OPRF outputs of tokens we hold (spec §10.2).
                named = labelled_handles(frame)
                try:
                    label, data = open_labelled(
                        frame, session_id=session_id, output_of=peer_outputs.__getitem__
                    )
                except LabelNotMatched:  # names a handle we never matched
                    return refuse_label(named, DENY_NOT_DECIDED)
                except (LabelError, DecryptionError):
                    return refuse_label(named, DENY_LABEL_FAILED)
                try:
                    receipt = store.receive(
                        data,
                        expected_session_id=session_id,
                        now=now_clock(),
                        expected_matches=expected,
                        label_handles=label,
                    )
                except XlinkError as exc:
                    refused_by_us += 1
                    reason = getattr(exc, "reasons", None) or [type(exc).__name__]
                    return False, str(reason[0]).encode("utf-8")[:200]
                return True, receipt

            try:
                transferred = await transfer_releases(
                    gate,
                    batch.sealed,
                    store_one,
                    idle_timeout,
                    encode=lambda s: seal_labelled(
                        s.data,
                        s.match_handles,
                        session_id=session_id,
                        output_of=session.labels.own_output,
                        rng=rng,
                    ),
                )
            except RemoteProtocolError as exc:
                transfer_aborted(exc)
                raise
        except BaseException:
            await conn.close(timeout=1.0)
            raise
        await conn.close()
        verified = refused_by_peer = 0
        for sealed, (ok, answer) in zip(batch.sealed, transferred.answers, strict=True):
            if not ok:
                refused_by_peer += 1
                continue
            try:
                verify_receipt(answer, mou=mou, release=sealed)
            except XlinkError:  # a forged or garbled receipt: counted as not verified
                continue
            verified += 1
        received = Counter(
            r.category.value for r in store.list(now_clock()) if r.session_id == result.session_id
        )
    report = verify_log(audit_path, keys.signing_key.verify_key)
    return AgencyOutcome(
        agency=agency,
        peer=peer.agency_id,
        role=role,
        mou_id=mou.id,
        session_id=result.session_id.hex(),
        records=side.loaded,
        rejected=side.rejected,
        tokens=len(side.tokens),
        matched_tokens=result.matched_tokens,
        candidates=decision.candidates,
        decided=len(decision.matches),
        approval_required=mou.approval_required,
        released=dict(sorted(Counter(s.category for s in batch.sealed).items())),
        queued=len(batch.queued),
        denied=len(batch.denied),
        received=dict(sorted(received.items())),
        refused_by_us=refused_by_us,
        receipts_verified=verified,
        refused_by_peer=refused_by_peer,
        audit_ok=report.ok,
        audit_entries=report.entries,
        audit_reason=report.reason,
        workdir=str(work),
    )
