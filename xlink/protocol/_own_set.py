"""One party's own set in the exchange (spec: xlink-psi-v2 §5.3 steps 3-4, §6.4): its distinct
token values, padded with dummies to the declared size, in a secret order, and each chunk of
them hashed to the group and blinded as it is sent. The hashes may have been made before the
session (:mod:`xlink.protocol.hashed`); the dummies are always hashed when sent.
"""

from __future__ import annotations

import numpy as np

from xlink.crypto.rand import RandomSource
from xlink.crypto.suite import ELEMENT_SIZE, BlindingKey, Ciphersuite
from xlink.crypto.workers import GroupWorkers
from xlink.linkage.tokens import TOKEN_SIZE, TokenSet
from xlink.protocol._matching import chunk_len
from xlink.protocol._sets import (
    Index,
    Rows,
    distinct_index,
    gather_sources,
    random_permutation,
    rows_of,
)
from xlink.protocol.hashed import HashedTokens

__all__ = ["OwnSet"]

_NO_INDEX = np.zeros(0, dtype=np.int32)


class OwnSet:
    """The distinct values of ``tokens`` (and ``hashed``, their hashes made before the
    session, checked against ``dst_id`` and the number of distinct values: ``ValueError``
    otherwise). :meth:`shuffle` then pads and orders them; :meth:`chunk` gives each chunk to
    send."""

    def __init__(self, tokens: TokenSet, hashed: HashedTokens | None, dst_id: bytes) -> None:
        self._values = rows_of(tokens.values)
        self._first, self.inverse = distinct_index(self._values)
        self.distinct_count = len(self._first)
        self._hashed: Rows | None = None
        if hashed is not None:
            if hashed.dst_id != dst_id:
                raise ValueError("the hashed tokens were made for another MOU or suite")
            if len(hashed) != self.distinct_count:
                raise ValueError("the hashed tokens are not those of this token set")
            self._hashed = rows_of(hashed.elements)
        self.size = 0
        self.perm: Index = _NO_INDEX
        self._dummies: Rows = rows_of(b"")

    def shuffle(self, size: int, rng: RandomSource) -> None:
        """Draw the secret order of ``size`` slots, then the dummy tokens, from ``rng``, in
        this order (spec §5.3)."""
        self.size = size
        self.perm = random_permutation(size, rng).astype(np.int32)
        self._dummies = rows_of(rng(TOKEN_SIZE * (size - self.distinct_count)))

    def chunk(
        self,
        seq: int,
        chunk_size: int,
        *,
        workers: GroupWorkers,
        suite: Ciphersuite,
        key: BlindingKey,
        dst: bytes,
    ) -> bytes:
        """Chunk ``seq``'s elements, hashed (or taken from the hashes made before) and
        blinded with ``key``. Raises :class:`~xlink.errors.InvalidElement` for a value that
        hashes to the identity."""
        start = seq * chunk_size
        slots = self.perm[start : start + chunk_len(self.size, chunk_size, seq)]
        if self._hashed is None:
            sources = gather_sources(self._values, self._first, self._dummies, slots)
            return workers.hash_and_blind(suite, key, dst, sources.tobytes())
        elements = np.empty((len(slots), ELEMENT_SIZE), dtype=np.uint8)
        real = slots < self.distinct_count
        elements[real] = self._hashed[slots[real]]
        dummies = self._dummies[slots[~real] - self.distinct_count]
        if len(dummies):
            hashed = workers.hash_to_group(suite, dst, dummies.tobytes())
            elements[~real] = rows_of(hashed)
        return workers.blind(suite, key, elements.tobytes())

    def all_sent(self) -> None:
        """Every chunk is on its way: drop what only sending needed."""
        self._first, self._dummies, self._hashed = _NO_INDEX, rows_of(b""), None

    def take_order(self) -> tuple[Index, Index]:
        """``(perm, inverse)`` for matching (spec §7), released from the set."""
        perm, inverse = self.perm, self.inverse
        self.perm = self.inverse = _NO_INDEX
        return perm, inverse
