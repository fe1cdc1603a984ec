"""Match tokens: the domain-separated digests a record contributes to matching
(spec: xlink-psi-v2 §3).

A token is ``SHA-256`` over a length-prefixed encoding of the domain label, the linkage schema id
and version, the key name and version, and the normalised value parts. Tokens never leave the
agency: the PSI protocol hashes them to the group under a per-MOU label and blinds them with a
per-session scalar before anything goes on the wire.

:class:`TokenSet` keeps a party's tokens in columns (one ``bytes`` buffer of values, two compact
integer arrays) so that a million tokens cost ~37 MB rather than a million Python objects.
"""

from __future__ import annotations

import hashlib
import io
from array import array
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _hashlib import HASH

__all__ = [
    "TOKEN_DST",
    "TOKEN_SIZE",
    "TokenSet",
    "TokenSetBuilder",
    "encode_part",
    "token_digest",
    "token_prefix",
]

TOKEN_DST = b"xlink/v1/match-token"
TOKEN_SIZE = 32


def _lp(data: bytes) -> bytes:
    """4-byte big-endian length prefix, so that no two different part lists share an encoding."""
    return len(data).to_bytes(4, "big") + data


def token_prefix(
    schema_id: str, schema_version: int, key_name: str, key_version: int, n_parts: int
) -> HASH:
    """A SHA-256 object fed with everything of a token's encoding before its parts: the same
    for every token of one key, so a caller hashing many can ``copy()`` it and feed only the
    :func:`encode_part` of each part (spec: xlink-psi-v2 §3.1)."""
    h = hashlib.sha256()
    h.update(_lp(TOKEN_DST))
    h.update(_lp(schema_id.encode("utf-8")))
    h.update(schema_version.to_bytes(4, "big"))
    h.update(_lp(key_name.encode("utf-8")))
    h.update(key_version.to_bytes(4, "big"))
    h.update(n_parts.to_bytes(4, "big"))
    return h


def encode_part(part: str) -> bytes:
    """How one normalised value is fed to a token's hash: UTF-8, length-prefixed (as
    :func:`_lp`, written out: this runs for every distinct value a run derives)."""
    data = part.encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def token_digest(
    schema_id: str, schema_version: int, key_name: str, key_version: int, parts: Sequence[str]
) -> bytes:
    """Return the 32-byte token for one key of one record (spec: xlink-psi-v2 §3.1).

    ``parts`` are the normalised values the key's recipe produced, in recipe order.
    """
    h = token_prefix(schema_id, schema_version, key_name, key_version, len(parts))
    for part in parts:
        h.update(encode_part(part))
    return h.digest()


@dataclass(frozen=True, slots=True)
class TokenSet:
    """One party's tokens, in columns. Token ``i`` is ``values[32*i : 32*i+32]``; it belongs to
    record ``record_ids[record_index[i]]`` and was derived by key ``key_names[key_index[i]]``.

    Within one record a token value appears once (a key that yields the same value twice, e.g.
    two identical aliases, contributes one token). Across records a value may repeat.
    """

    key_names: tuple[str, ...]
    record_ids: tuple[str, ...]
    values: bytes
    record_index: array[int]  # typecode "I"
    key_index: array[int]  # typecode "B"

    def __post_init__(self) -> None:
        n = len(self.record_index)
        if len(self.values) != n * TOKEN_SIZE or len(self.key_index) != n:
            raise ValueError("TokenSet columns have different lengths")
        if len(self.key_names) > 255:
            raise ValueError("at most 255 keys")

    def __len__(self) -> int:
        return len(self.record_index)

    def __repr__(self) -> str:
        return (
            f"TokenSet(tokens={len(self)}, records={len(self.record_ids)}, keys={self.key_names})"
        )

    def value(self, i: int) -> bytes:
        return self.values[TOKEN_SIZE * i : TOKEN_SIZE * (i + 1)]

    def key_of(self, i: int) -> str:
        return self.key_names[self.key_index[i]]

    def record_of(self, i: int) -> str:
        return self.record_ids[self.record_index[i]]

    def tokens_per_record(self) -> float:
        return len(self) / len(self.record_ids) if self.record_ids else 0.0

    def tokens_of(self, wanted: Collection[str]) -> dict[str, list[bytes]]:
        """Every token of each record whose id is in ``wanted`` (and in this set), by record id:
        one pass over the ids, then each record's run of tokens (contiguous, as
        :class:`TokenSetBuilder` writes them; any order is read, more slowly)."""
        import numpy as np

        positions = {rid: i for i, rid in enumerate(self.record_ids) if rid in wanted}
        if not positions:
            return {}
        owners = np.frombuffer(self.record_index, dtype=np.uint32)
        values = np.frombuffer(self.values, dtype=f"V{TOKEN_SIZE}")
        if bool(np.all(owners[1:] >= owners[:-1])):
            starts = np.searchsorted(owners, list(positions.values()), side="left")
            ends = np.searchsorted(owners, list(positions.values()), side="right")
            runs = zip(positions, starts.tolist(), ends.tolist(), strict=True)
            return {rid: [v.tobytes() for v in values[a:b]] for rid, a, b in runs}
        return {rid: [v.tobytes() for v in values[owners == i]] for rid, i in positions.items()}

    def only_records(self, keep: Collection[str]) -> TokenSet:
        """The tokens of the records whose ids are in ``keep``, those records in their order."""
        import numpy as np

        kept = [i for i, record_id in enumerate(self.record_ids) if record_id in keep]
        renumber = np.full(len(self.record_ids) + 1, -1, dtype=np.int64)
        renumber[kept] = np.arange(len(kept))
        old = np.frombuffer(self.record_index, dtype=np.uint32).astype(np.int64)
        mask = renumber[old] >= 0 if len(old) else np.zeros(0, dtype=np.bool_)
        values = np.frombuffer(self.values, dtype=f"V{TOKEN_SIZE}")[mask]
        return TokenSet(
            key_names=self.key_names,
            record_ids=tuple(self.record_ids[i] for i in kept),
            values=values.tobytes(),
            record_index=array("I", renumber[old[mask]].astype(np.uint32).tobytes()),
            key_index=array("B", np.frombuffer(self.key_index, dtype=np.uint8)[mask].tobytes()),
        )


class TokenSetBuilder:
    """Accumulates tokens record by record and freezes them into a :class:`TokenSet`."""

    def __init__(self, key_names: Sequence[str]) -> None:
        self._key_names = tuple(key_names)
        self._key_pos = {k: i for i, k in enumerate(self._key_names)}
        if len(self._key_pos) != len(self._key_names):
            raise ValueError("duplicate key names")
        self._record_ids: list[str] = []
        # BytesIO rather than bytearray: getvalue() hands over its buffer without a copy, so
        # that building a TokenSet never holds the token values twice.
        self._values = io.BytesIO()
        self._record_index = array("I")
        self._key_index = array("B")

    def add_record(self, record_id: str, tokens: Iterable[tuple[str, bytes]]) -> None:
        """Add one record's ``(key_name, token)`` pairs; repeated values within it count once."""
        r = len(self._record_ids)
        self._record_ids.append(record_id)
        seen: set[bytes] = set()
        for key, value in tokens:
            if len(value) != TOKEN_SIZE:
                raise ValueError(f"a token is {TOKEN_SIZE} bytes")
            if value in seen:
                continue
            seen.add(value)
            self._values.write(value)
            self._record_index.append(r)
            self._key_index.append(self._key_pos[key])

    def add_distinct(self, record_id: str, key_index: bytes, values: bytes) -> None:
        """Add one record's tokens in columns: token ``i`` is ``values[32*i : 32*i+32]``, by
        key ``key_names[key_index[i]]``. The caller guarantees that the values are distinct
        (:meth:`add_record` removes repeats; this does not look)."""
        n = len(key_index)
        if len(values) != n * TOKEN_SIZE:
            raise ValueError(f"a token is {TOKEN_SIZE} bytes")
        if n and max(key_index) >= len(self._key_names):
            raise ValueError("key index out of range")
        r = len(self._record_ids)
        self._record_ids.append(record_id)
        self._values.write(values)
        self._record_index.extend(repeat(r, n))
        self._key_index.frombytes(key_index)

    def add_chunk(
        self, record_ids: Sequence[str], counts: Sequence[int], key_index: bytes, values: bytes
    ) -> None:
        """Add several records' tokens in columns: record ``record_ids[j]`` has the next
        ``counts[j]`` tokens of ``key_index`` and ``values`` (as for :meth:`add_distinct`,
        each record's values distinct)."""
        n = len(key_index)
        if len(counts) != len(record_ids) or sum(counts) != n:
            raise ValueError("token counts do not match the records and tokens")
        if len(values) != n * TOKEN_SIZE:
            raise ValueError(f"a token is {TOKEN_SIZE} bytes")
        if n and max(key_index) >= len(self._key_names):
            raise ValueError("key index out of range")
        base = len(self._record_ids)
        self._record_ids.extend(record_ids)
        # each record's number once per token of it, without a Python step per record
        numbers = range(base, base + len(counts))
        self._record_index.extend(chain.from_iterable(map(repeat, numbers, counts)))
        self._values.write(values)
        self._key_index.frombytes(key_index)

    def build(self) -> TokenSet:
        return TokenSet(
            key_names=self._key_names,
            record_ids=tuple(self._record_ids),
            values=self._values.getvalue(),
            record_index=self._record_index,
            key_index=self._key_index,
        )
