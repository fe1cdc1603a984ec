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
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["TOKEN_DST", "TOKEN_SIZE", "TokenSet", "TokenSetBuilder", "token_digest"]

TOKEN_DST = b"xlink/v1/match-token"
TOKEN_SIZE = 32


def _lp(data: bytes) -> bytes:
    """4-byte big-endian length prefix, so that no two different part lists share an encoding."""
    return len(data).to_bytes(4, "big") + data


def token_digest(
    schema_id: str, schema_version: int, key_name: str, key_version: int, parts: Sequence[str]
) -> bytes:
    """Return the 32-byte token for one key of one record (spec: xlink-psi-v2 §3.1).

    ``parts`` are the normalised values the key's recipe produced, in recipe order.
    """
    h = hashlib.sha256()
    h.update(_lp(TOKEN_DST))
    h.update(_lp(schema_id.encode("utf-8")))
    h.update(schema_version.to_bytes(4, "big"))
    h.update(_lp(key_name.encode("utf-8")))
    h.update(key_version.to_bytes(4, "big"))
    h.update(len(parts).to_bytes(4, "big"))
    for part in parts:
        h.update(_lp(part.encode("utf-8")))
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


class TokenSetBuilder:
    """Accumulates tokens record by record and freezes them into a :class:`TokenSet`."""

    def __init__(self, key_names: Sequence[str]) -> None:
        self._key_names = tuple(key_names)
        self._key_pos = {k: i for i, k in enumerate(self._key_names)}
        if len(self._key_pos) != len(self._key_names):
            raise ValueError("duplicate key names")
        self._record_ids: list[str] = []
        self._values = bytearray()
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
            self._values += value
            self._record_index.append(r)
            self._key_index.append(self._key_pos[key])

    def build(self) -> TokenSet:
        return TokenSet(
            key_names=self._key_names,
            record_ids=tuple(self._record_ids),
            values=bytes(self._values),
            record_index=self._record_index,
            key_index=self._key_index,
        )
