"""The release transfer v3 cases (xlink-release-v1 §10): every case of
``protocols/vectors/release-transfer-v3/invalid.json`` played live, but those of
:data:`OFFLINE_ONLY`, built from the runner's own frames of the live transfer."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Final

from xlink.conformance.cases_psi import ORDER_8_POINT
from xlink.conformance.script import At, RuleContext, with_top_bit
from xlink.error_codes import AbortCode as A
from xlink.protocol.messages import MessageType
from xlink.release.transfer import FrameType, transfer_frame

__all__ = ["OFFLINE_ONLY", "TRANSFER_CASES", "TransferCase"]

F = FrameType
Do = Callable[[bytes, RuleContext], list[bytes]]
U = A.UNEXPECTED_MESSAGE


@dataclasses.dataclass(frozen=True)
class TransferCase:
    """A live transfer case: the vector it plays, the rule, the code, and whether the agent may
    already have released or stored (``releasing``: the fault comes in the release phase,
    where releases are sent both ways at once)."""

    name: str
    description: str
    rule: At
    code: A
    releasing: bool = False
    stored_before: bool = False
    """Some of the runner's releases precede the fault (they may be stored)."""
    disjoint: bool = False
    """Played with the runner's list that shares nobody with the agent's (nothing decided)."""


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _fixed(*frames: bytes) -> Do:
    return lambda _m, _c: list(frames)


def _edit(edit: Callable[[bytes], list[bytes]]) -> Do:
    return lambda m, _c: edit(m)


def _with_point(index: int, point: bytes) -> Do:
    def do(m: bytes, _c: RuleContext) -> list[bytes]:
        points = (len(m) - 9) // 32
        i = min(index, points - 1)
        start = 9 + 32 * i
        return [m[:start] + point + m[start + 32 :]]

    return do


def _sent(kind: F | MessageType, nth: int = 0) -> Callable[[RuleContext], bytes]:
    return lambda c: c.sent[kind][nth]


def _before(*frames: Callable[[RuleContext], bytes]) -> Do:
    return lambda m, c: [*(f(c) for f in frames), m]


def _count_minus_one(m: bytes, _c: RuleContext) -> list[bytes]:
    n = int.from_bytes(m[5:9], "big")
    return [transfer_frame(F.COUNT, _u32(max(n - 1, 0)))]


def _receipts_end_minus_one(m: bytes, _c: RuleContext) -> list[bytes]:
    n = int.from_bytes(m[5:9], "big")
    return [transfer_frame(F.RECEIPTS_END, _u32(n - 1))]


def _top_bit(index: int) -> Do:
    """Point ``index`` (or the last) of a LABELS or LABEL_ANSWERS frame with bit 255 set."""

    def do(m: bytes, _c: RuleContext) -> list[bytes]:
        return [m[:9] + with_top_bit(m[9:], min(index, (len(m) - 9) // 32 - 1))]

    return do


def _t(
    name: str, description: str, rule: At, code: A = U, *, releasing: bool = False
) -> TransferCase:
    after_releases = {F.RELEASE, F.END, F.RECEIPT, F.RECEIPTS_END}
    stored_before = (isinstance(rule.kind, F) and rule.kind in after_releases) or (
        name == "more_releases_than_count"
    )
    return TransferCase(name, description, rule, code, releasing, stored_before)


TRANSFER_CASES: Final[tuple[TransferCase, ...]] = (
    _t("empty_frame", "a zero-length frame where the DIGEST belongs",
       At(F.DIGEST, _fixed(b""))),
    _t("psi_message", "a PSI message (the runner's Hello) where the DIGEST belongs",
       At(F.DIGEST, lambda _m, c: [c.sent[MessageType.HELLO][0]])),
    _t("other_magic", "f0 58 53 01: not the transfer's magic",
       At(F.DIGEST, _edit(lambda d: [b"\xf0XS\x01" + d[4:]]))),
    _t("magic_only", "the 4-byte magic and no type byte", At(F.DIGEST, _edit(lambda d: [d[:4]]))),
    _t("transfer_v0", "a release transfer v0 frame (f0 58 52 54, COUNT 0)",
       At(F.DIGEST, _fixed(b"\xf0XRT\x01" + _u32(0))), A.UNSUPPORTED_VERSION),
    _t("transfer_v1", "the DIGEST with version byte 01 (release transfer v1: labels per handle)",
       At(F.DIGEST, _edit(lambda d: [d[:3] + b"\x01" + d[4:]])), A.UNSUPPORTED_VERSION),
    _t("transfer_v2", "the DIGEST with version byte 02 (release transfer v2: a digest without "
       "its sender)",
       At(F.DIGEST, _edit(lambda d: [d[:3] + b"\x02" + d[4:]])), A.UNSUPPORTED_VERSION),
    _t("transfer_v4", "the DIGEST with version byte 04",
       At(F.DIGEST, _edit(lambda d: [d[:3] + b"\x04" + d[4:]])), A.UNSUPPORTED_VERSION),
    _t("unknown_type_0", "type byte 0", At(F.DIGEST, _edit(lambda d: [d[:4] + b"\x00"]))),
    _t("unknown_type_10", "type byte 10 after the labels",
       At(F.COUNT, _edit(lambda c: [c[:4] + b"\x0a"])), releasing=True),
    _t("count_before_digest", "COUNT as the first frame",
       At(F.DIGEST, _fixed(transfer_frame(F.COUNT, _u32(0))))),
    _t("digest_short", "a DIGEST of 31 bytes", At(F.DIGEST, _edit(lambda d: [d[:-1]]))),
    _t("digest_long", "a DIGEST of 33 bytes", At(F.DIGEST, _edit(lambda d: [d + b"\x00"]))),
    _t("digest_mismatch", "the digest of other decided pairs",
       At(F.DIGEST, _edit(lambda d: [transfer_frame(F.DIGEST, hashlib.sha256(d).digest())])),
       A.DECISION_MISMATCH),
    _t("digest_replayed", "DIGEST twice", At(F.DIGEST, _edit(lambda d: [d, d]))),
    _t("count_during_labels", "COUNT before the label evaluation is over",
       At(F.LABELS, _fixed(transfer_frame(F.COUNT, _u32(1))))),
    _t("labels_out_of_order", "LABELS with seq 1 (the list has one chunk)",
       At(F.LABELS, _edit(lambda m: [m[:5] + _u32(1) + m[9:]]))),
    _t("labels_without_seq", "LABELS of 3 bytes", At(F.LABELS, _edit(lambda m: [m[:8]]))),
    _t("labels_replayed", "LABELS 0 twice", At(F.LABELS, _edit(lambda m: [m, m]))),
    _t("labels_one_point_more", "LABELS with one point more than the list's pairs",
       At(F.LABELS, _edit(lambda m: [m + m[9:41]])), A.WRONG_COUNT),
    _t("labels_one_point_fewer", "LABELS with one point fewer",
       At(F.LABELS, _edit(lambda m: [m[:-32]])), A.WRONG_COUNT),
    _t("labels_zero_point", "a LABELS point of 32 zero bytes (ristretto255's identity: the "
       "runner proposes ciphersuite 2, xlink-psi-v2 §4.6)",
       At(F.LABELS, _with_point(1, bytes(32))), A.IDENTITY_ELEMENT),
    _t("labels_small_order_point", "a LABELS point of order 8",
       At(F.LABELS, _with_point(0, ORDER_8_POINT)), A.INVALID_ELEMENT),
    _t("labels_point_bit_255", "a LABELS point with bit 255 set (not a canonical ristretto255 "
       "encoding, though libsodium 1.0.18 decodes it)",
       At(F.LABELS, _top_bit(0)), A.INVALID_ELEMENT),
    _t("label_answers_replayed", "LABEL_ANSWERS 0 twice",
       At(F.LABEL_ANSWERS, _edit(lambda m: [m, m])), releasing=True),
    _t("label_answers_seq_1", "LABEL_ANSWERS with seq 1, never requested",
       At(F.LABEL_ANSWERS, _edit(lambda m: [m[:5] + _u32(1) + m[9:]]))),
    _t("label_answers_one_more", "LABEL_ANSWERS with one answer more",
       At(F.LABEL_ANSWERS, _edit(lambda m: [m + m[9:41]])), A.WRONG_COUNT),
    _t("label_answers_zero_point", "a LABEL_ANSWERS point of 32 zero bytes (the identity)",
       At(F.LABEL_ANSWERS, _with_point(2, bytes(32))), A.IDENTITY_ELEMENT),
    _t("label_answers_point_bit_255", "a LABEL_ANSWERS point with bit 255 set",
       At(F.LABEL_ANSWERS, _top_bit(1)), A.INVALID_ELEMENT),
    _t("labels_after_the_labels", "LABELS 0 again once the label evaluation is over",
       At(F.COUNT, _before(_sent(F.LABELS))), releasing=True),
    _t("release_before_count", "a RELEASE before COUNT", At(F.COUNT, _fixed()), releasing=True),
    _t("count_above_decided", "a COUNT above the number of decided matches",
       At(F.COUNT, _fixed(transfer_frame(F.COUNT, _u32(0xFFFF)))), A.TOO_MANY_RELEASES,
       releasing=True),
    _t("count_of_3_bytes", "a COUNT body of 3 bytes", At(F.COUNT, _edit(lambda m: [m[:-1]])),
       releasing=True),
    _t("count_replayed", "COUNT twice", At(F.COUNT, _edit(lambda m: [m, m])), releasing=True),
    _t("more_releases_than_count", "COUNT one below the releases then sent",
       At(F.COUNT, _count_minus_one), releasing=True),
    _t("end_early", "END after the first release, before the count is reached",
       At(F.RELEASE, lambda m, _c: [m, transfer_frame(F.END)]), releasing=True),
    _t("end_with_body", "END with one byte of body",
       At(F.END, _edit(lambda m: [m + b"\x00"])), releasing=True),
    _t("end_replayed", "END twice", At(F.END, _edit(lambda m: [m, m])), releasing=True),
    _t("release_after_end", "a RELEASE after END",
       At(F.END, lambda m, c: [m, c.sent[F.RELEASE][0]]), releasing=True),
    _t("answer_beyond_releases", "one answer more than the agent's releases",
       At(F.RECEIPTS_END, lambda m, c: [c.sent[F.RECEIPT][-1], m]), releasing=True),
    _t("refusal_too_long", "a REFUSED reason of 201 bytes",
       At(F.RECEIPT, _fixed(transfer_frame(F.REFUSED, b"x" * 201))), releasing=True),
    _t("receipt_too_long", "a RECEIPT of 4,097 bytes",
       At(F.RECEIPT, _fixed(transfer_frame(F.RECEIPT, b"x" * 4097))), releasing=True),
    _t("receipts_end_early", "RECEIPTS_END after the first answer, before the last",
       At(F.RECEIPT, lambda m, _c: [m, transfer_frame(F.RECEIPTS_END, _u32(1))]),
       releasing=True),
    _t("receipts_end_wrong_count", "RECEIPTS_END with one answer fewer than were sent",
       At(F.RECEIPTS_END, _receipts_end_minus_one), releasing=True),
    dataclasses.replace(
        _t("labels_when_nothing_decided",
           "an empty LABELS 0 when nothing was decided (no label frame is due)",
           At(F.DIGEST, _edit(lambda d: [d, transfer_frame(F.LABELS, _u32(0))]))),
        disjoint=True,
    ),
)  # fmt: skip

OFFLINE_ONLY: Final = {
    "frame_after_done": (
        "a frame after the transfer is done reaches an implementation that has already closed "
        "the connection, as the spec has it do: it is not observable live"
    ),
    "digest_reflected": (
        "the runner sends its DIGEST before it reads the agent's, as the spec has every side "
        "do, so it cannot send the agent's own DIGEST back live"
    ),
    **dict.fromkeys(
        (
            "reciprocal_release_beyond_the_fewer_offer",
            "reciprocal_end_before_the_fewer_offer",
            "reciprocal_refused",
        ),
        "a reciprocal transfer (xlink-release-v1 §10.5) needs an MOU with release.reciprocal, "
        "and the kit's has none: checked offline, against the vectors",
    ),
}
"""Vector cases with no live counterpart, and why."""
