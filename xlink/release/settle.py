"""The answers to releases (DESIGN §2 step 7; xlink-release-v1 §8, §10): the recipient's step,
one release opened, checked and receipted (:func:`receive_release`), and the originator's, the
peer's receipts and refusals settled as they arrive (:class:`ReceiptSettler`,
:func:`settle_receipts`), each audited and marked in the outbound ledger."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from xlink.audit import AuditEvent, AuditLog
from xlink.crypto.keys import SealingKey, SigningKey
from xlink.errors import XlinkError
from xlink.identifiers import REASON_CODE
from xlink.policy.mou import Mou
from xlink.release.queue import ApprovalQueue
from xlink.release.receipt import issue_receipt, verify_receipt
from xlink.release.recipe import ReleaseBatch
from xlink.release.record import ReleaseRecord, encode_release, release_digest
from xlink.release.seal import open_release

__all__ = ["ReceiptSettler", "receive_release", "settle_receipts"]


class ReceiptSettler:
    """Settles the peer's answers to the sealed releases of ``batch``, each as it arrives
    (:meth:`settle`; xlink-release-v1 §8, §10), so that a receipt that came in is recorded even
    if the transfer then fails. ``clock`` dates each entry.

    A verified receipt is audited as ``RECEIPT_RECEIVED``; the recipient's audit checkpoint it
    carries is kept and countersigned (:meth:`AuditLog.keep_partner_checkpoint
    <xlink.audit.AuditLog.keep_partner_checkpoint>`: ``CHECKPOINT_RECEIVED``); its ledger item
    is marked delivered with the receipt's bytes kept (:meth:`ApprovalQueue.mark_sent`). A
    refusal (audited as ``RELEASE_REFUSED`` with the peer's reason code, or ``unreadable``), or
    a receipt that does not verify, its checkpoint included (``RECEIPT_INVALID``), leaves the
    item handed out, so the next exchange offers that record version again. The caller audits
    ``RELEASE_SENT`` as the transfer takes each release to send.
    """

    __slots__ = ("_audit", "_batch", "_clock", "_items", "_mou", "_queue", "_settled")

    def __init__(
        self,
        batch: ReleaseBatch,
        *,
        mou: Mou,
        clock: Callable[[], datetime],
        queue: ApprovalQueue | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._batch = batch
        self._mou = mou
        self._clock = clock
        self._queue = queue
        self._audit = audit
        self._items = batch.items or (None,) * len(batch.sealed)
        self._settled: dict[int, bool | None] = {}  # index -> verified / refused / None

    def settle(self, index: int, ok: bool, answer: bytes) -> None:
        """The peer's answer to our release number ``index`` (from 0): ``(True, receipt)`` or
        ``(False, reason)``. Each index is settled once (``ValueError`` for a second answer
        or an index outside the batch)."""
        if not 0 <= index < len(self._batch.sealed) or index in self._settled:
            raise ValueError(f"release {index}: not in the batch, or already answered")
        sealed, item = self._batch.sealed[index], self._items[index]
        audit, now = self._audit, self._clock()
        ids = {"session": sealed.session_id, "handle": sealed.release_id}
        if not ok:
            self._settled[index] = False
            if audit is not None:
                reason = _peer_reason(answer)
                audit.append(AuditEvent.RELEASE_REFUSED, {**ids, "reason": reason}, now=now)
            return
        base = {**ids, "digest": sealed.digest}
        try:
            receipt = verify_receipt(answer, mou=self._mou, release=sealed, now=now)
        except XlinkError:  # a forged or garbled receipt: not counted as delivered
            self._settled[index] = None
            if audit is not None:
                audit.append(AuditEvent.RECEIPT_INVALID, base, now=now)
            return
        self._settled[index] = True
        if audit is not None:
            audit.append(AuditEvent.RECEIPT_RECEIVED, base, now=now)
            if receipt.checkpoint is not None:
                audit.keep_partner_checkpoint(
                    sealed.recipient,
                    receipt.checkpoint,
                    now=now,
                    session=sealed.session_id,
                    handle=sealed.release_id,
                )
        if self._queue is not None and item is not None:
            self._queue.mark_sent(
                item,
                sealed.release_id,
                now=now,
                session_id=sealed.session_id,
                receipt=bytes(answer),
            )

    def finish(self, answers: Sequence[tuple[bool, bytes]]) -> tuple[int, int]:
        """After the transfer, with every answer (one per sealed release, in order): settle
        those :meth:`settle` has not seen, and return ``(receipts verified, refused by the
        peer)``. ``ValueError`` unless there is one answer per sealed release."""
        if len(answers) != len(self._batch.sealed):
            raise ValueError("one answer per sealed release")
        for index, (ok, answer) in enumerate(answers):
            if index not in self._settled:
                self.settle(index, ok, answer)
        outcomes = list(self._settled.values())
        return outcomes.count(True), outcomes.count(False)


def settle_receipts(
    batch: ReleaseBatch,
    answers: Sequence[tuple[bool, bytes]],
    *,
    mou: Mou,
    now: datetime,
    queue: ApprovalQueue | None = None,
    audit: AuditLog | None = None,
) -> tuple[int, int]:
    """The peer's answer to each sealed release of ``batch``, in order, settled at once as
    :class:`ReceiptSettler` does, dated ``now`` (for answers that arrive together: the query
    mode's RECEIPTS message). Returns ``(receipts verified, refused by the peer)``."""
    settler = ReceiptSettler(batch, mou=mou, clock=lambda: now, queue=queue, audit=audit)
    return settler.finish(answers)


def receive_release(
    sealed: bytes,
    *,
    mou: Mou,
    sealing_key: SealingKey,
    signing_key: SigningKey,
    expected_session_id: bytes,
    now: datetime,
    audit: AuditLog | None = None,
) -> tuple[ReleaseRecord, bytes]:
    """The recipient's step (DESIGN §2 step 7): :func:`open_release` with every check, then
    a signed receipt to return, carrying ``audit``'s checkpoint signed now (xlink-release-v1
    §8; none without a log). Audited as ``RELEASE_RECEIVED`` and ``RECEIPT_SENT``, after the
    checkpoint. Raises what :func:`open_release` raises; nothing is audited for a refused
    release (the caller logs the refusal with its session)."""
    record = open_release(sealed, sealing_key, mou=mou, expected_session_id=expected_session_id)
    checkpoint = None if audit is None else audit.publish(now=now)
    receipt = issue_receipt(record, signing_key, now=now, checkpoint=checkpoint)
    if audit is not None:
        digest = release_digest(encode_release(record))
        base = {"session": record.session_id, "handle": record.release_id, "digest": digest}
        audit.append(AuditEvent.RELEASE_RECEIVED, {**base, "peer": record.originator}, now=now)
        audit.append(AuditEvent.RECEIPT_SENT, base, now=now)
    return record, receipt


def _peer_reason(answer: bytes) -> str:
    """The peer's refusal reason if it is a well-formed code, else ``unreadable`` (what a
    partner writes is never copied into our log as is)."""
    try:
        text = answer.decode("ascii")
    except UnicodeDecodeError:
        return "unreadable"
    return text if REASON_CODE.fullmatch(text) else "unreadable"
