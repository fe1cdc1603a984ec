"""What the release transfer machine's tests share: the frames of xlink-release-v1 §10 written
out, and cheap label functions (the machine only counts points)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

from xlink.errors import RemoteProtocolError
from xlink.protocol import AbortCode

MAGIC = b"\xf0XR\x03"
COUNT, RELEASE, END, RECEIPT, REFUSED, RECEIPTS_END, DIGEST, LABELS, LABEL_ANSWERS = range(1, 10)
BAD_POINT = b"\xff" * 32  # the fake label functions refuse it


def frame(kind: int, body: bytes = b"", magic: bytes = MAGIC) -> bytes:
    return magic + bytes([kind]) + body


def u32(n: int) -> bytes:
    """``n`` as 4 bytes, big-endian; ``OverflowError`` outside 0..2^32-1 (never wrapped: a
    test means the value it writes)."""
    return n.to_bytes(4, "big")


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


# -- fake label functions: the machine only counts points; these are cheap and checkable ------


@dataclasses.dataclass(frozen=True)
class FakeLabels:
    """``request`` hashes each pair's handles with ``tag``; ``answer`` hashes each point with
    ``key``; ``outputs`` hashes each answer. BAD_POINT is refused as a peer's bad element."""

    tag: bytes
    key: bytes

    def request(self, pairs: Sequence[Sequence[bytes]], start: int = 0) -> bytes:
        return b"".join(sha(self.tag, *pair) for pair in pairs)

    def answer(self, points: bytes) -> bytes:
        out = []
        for i in range(0, len(points), 32):
            point = points[i : i + 32]
            if point == BAD_POINT:
                raise RemoteProtocolError(AbortCode.INVALID_ELEMENT, "bad point")
            out.append(sha(self.key, point))
        return b"".join(out)

    def outputs(
        self, pairs: Sequence[Sequence[bytes]], answers: bytes, start: int = 0
    ) -> list[bytes]:
        assert len(answers) == 32 * len(pairs)
        chunks = [answers[i : i + 32] for i in range(0, len(answers), 32)]
        if BAD_POINT in chunks:
            raise RemoteProtocolError(AbortCode.IDENTITY_ELEMENT, "identity")
        return [sha(b"out", c) for c in chunks]

    def expected(self, peer: FakeLabels, pair: Sequence[bytes]) -> bytes:
        """Our output for ``pair`` when ``peer`` answers."""
        return sha(b"out", sha(peer.key, sha(self.tag, *pair)))
