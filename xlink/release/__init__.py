"""Release: what the originator lets out after a decided match, signed and sealed to the
recipient, with the source replaced by a handle only the originator can resolve (DESIGN §2
steps 6-7; spec: protocols/xlink-release-v1.md; guide: docs/release.md).

The usual path, originator side::

    batch = release_decided(decision, records, mou=mou, originator="CA-RCMP",
                            signing_key=key, handle_key=handle_key, rng=system_random,
                            now=now, queue=queue, audit=audit)
    # batch.sealed go to the peer (xlink.agency does this); then, with its answers:
    settle_receipts(batch, answers, mou=mou, now=now, queue=queue, audit=audit)
    # approval_required: officers approve in the queue; the next exchange sends them.

and recipient side::

    record, receipt = receive_release(sealed.data, mou=mou, sealing_key=skey,
                                      signing_key=key, expected_session_id=sid, now=now,
                                      audit=audit)  # the receipt carries its checkpoint
"""

from __future__ import annotations

from xlink.release.codec import MAX_ENVELOPE_SIZE, RELEASE_VERSION, ReleaseRejected
from xlink.release.handles import (
    SOURCE_HANDLE_DST,
    SOURCE_HANDLE_SIZE,
    SourceHandleKey,
    make_source_handle,
    resolve_source_handle,
)
from xlink.release.policy import ReleaseContent, decide_release, record_fields
from xlink.release.queue import ApprovalQueue, QueueError, QueueItem, QueueState, Reciprocity
from xlink.release.receipt import (
    DST_RECEIPT,
    RECEIPT_VERSION,
    Receipt,
    issue_receipt,
    verify_receipt,
)
from xlink.release.recipe import (
    DeniedRelease,
    Fate,
    MatchFate,
    ReleaseBatch,
    build_release,
    release_decided,
)
from xlink.release.record import (
    DST_RELEASE,
    ReleaseRecord,
    SignedRelease,
    decode_release,
    decode_signed_release,
    encode_release,
    release_digest,
    sign_release,
)
from xlink.release.seal import (
    SealedRelease,
    check_release_policy,
    match_for,
    open_release,
    seal_release,
)
from xlink.release.settle import ReceiptSettler, receive_release, settle_receipts

__all__ = [
    "DST_RECEIPT",
    "DST_RELEASE",
    "MAX_ENVELOPE_SIZE",
    "RECEIPT_VERSION",
    "RELEASE_VERSION",
    "SOURCE_HANDLE_DST",
    "SOURCE_HANDLE_SIZE",
    "ApprovalQueue",
    "DeniedRelease",
    "Fate",
    "MatchFate",
    "QueueError",
    "QueueItem",
    "QueueState",
    "Receipt",
    "ReceiptSettler",
    "Reciprocity",
    "ReleaseBatch",
    "ReleaseContent",
    "ReleaseRecord",
    "ReleaseRejected",
    "SealedRelease",
    "SignedRelease",
    "SourceHandleKey",
    "build_release",
    "check_release_policy",
    "decide_release",
    "decode_release",
    "decode_signed_release",
    "encode_release",
    "issue_receipt",
    "make_source_handle",
    "match_for",
    "open_release",
    "receive_release",
    "record_fields",
    "release_decided",
    "release_digest",
    "resolve_source_handle",
    "seal_release",
    "settle_receipts",
    "sign_release",
    "verify_receipt",
]
