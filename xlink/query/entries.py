"""The entries of a query table, both sides' view of them (spec: xlink-query-v1 §5.1, §5.4).

For every token ``t`` of every record, the holder computes the OPRF output ``y = F(k, t)``
under its key of the period (RFC 9497, :mod:`xlink.crypto.oprf9497`). The ``j``-th record
holding ``t`` (in the order the holder added them) gives one entry::

    d     = SHA-512(lp(ENTRY_DST) || y || u32(j))
    tag   = d[0:8]                      (big-endian unsigned 64-bit, the sort key)
    label = (u32(record) || presence) XOR d[8 : 8 + label_size]

``record`` is the holder's table index of the record and ``presence`` the bitmap of the schema
keys the record has a token for (bit ``i`` of byte ``i // 8`` for key ``i``, least significant
bit first). A removed record's entries stay with ``record = 0xFFFFFFFF`` and an empty bitmap
(a tombstone), so that the ``j`` of the other occurrences of the same token stay contiguous.
Equal tokens of different records give unrelated entries, so a table shows the number of token
occurrences and nothing about how often a value repeats. :func:`table_digest` names a whole
table.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DIGEST_DST",
    "ENTRY_DST",
    "MAX_PROBES",
    "MAX_RECORDS",
    "RECORD_SIZE",
    "TAG_DTYPE",
    "TAG_SIZE",
    "TOMBSTONE",
    "UNREADABLE_TABLE",
    "entries_of",
    "entry_pad",
    "keys_present",
    "label_size_for",
    "presence_bits",
    "table_digest",
    "xor_bytes",
]

ENTRY_DST: Final = b"xlink-query-v1/entry"
"""Domain label of the entry derivation (§5.1)."""
DIGEST_DST: Final = b"xlink-query-v1/table-digest"
"""Domain label of the table digest (§5.4)."""
TAG_SIZE: Final = 8
RECORD_SIZE: Final = 4
TOMBSTONE: Final = 0xFFFFFFFF
"""The record index of a removed record's entries."""
MAX_RECORDS: Final = TOMBSTONE - 1
MAX_PROBES: Final = 1 << 20
"""Most entries one output is probed for (records sharing one token value)."""

TAG_DTYPE: Final = np.dtype(">u8")
"""A tag on the wire and in the digest: a big-endian unsigned 64-bit integer."""


def table_digest(tags: npt.NDArray[np.uint64], labels: npt.NDArray[np.uint8]) -> bytes:
    """SHA-256 over the domain label and every entry ``tag || label`` in ascending order of
    tag, then label (§5.4): the same table gives the same digest on both sides, however it
    was built, updated or merged."""
    order = np.argsort(tags, kind="stable")
    sorted_tags = tags[order]
    ties = np.flatnonzero(sorted_tags[1:] == sorted_tags[:-1])
    if len(ties):  # equal tags (about one table in 10**5): order those entries by label
        starts = np.unique(ties)
        for start in starts:
            end = start + 1
            while end < len(sorted_tags) and sorted_tags[end] == sorted_tags[start]:
                end += 1
            run = order[start:end]
            order[start:end] = run[np.argsort([labels[i].tobytes() for i in run], kind="stable")]
    h = hashlib.sha256(len(DIGEST_DST).to_bytes(4, "big") + DIGEST_DST)
    step = 1 << 18
    for start in range(0, len(order), step):
        part = order[start : start + step]
        head = tags[part].astype(TAG_DTYPE).view(np.uint8).reshape(-1, TAG_SIZE)
        h.update(np.hstack([head, labels[part]]).tobytes())
    return h.digest()


def label_size_for(keys: int) -> int:
    """Bytes of one label: the record index and the key-presence bitmap of ``keys`` keys."""
    return RECORD_SIZE + (keys + 7) // 8


def entry_pad(output: bytes, j: int, label_size: int) -> tuple[int, bytes]:
    """The tag and the label pad of occurrence ``j`` of the token whose OPRF output is
    ``output`` (§5.1)."""
    d = hashlib.sha512(
        len(ENTRY_DST).to_bytes(4, "big") + ENTRY_DST + output + j.to_bytes(4, "big")
    ).digest()
    return int.from_bytes(d[:TAG_SIZE], "big"), d[TAG_SIZE : TAG_SIZE + label_size]


def presence_bits(key_indexes: Sequence[int] | npt.NDArray[np.uint8], keys: int) -> bytes:
    """The presence bitmap of a record with tokens for the keys at ``key_indexes``."""
    out = bytearray((keys + 7) // 8)
    for k in key_indexes:
        out[int(k) // 8] |= 1 << (int(k) % 8)
    return bytes(out)


def keys_present(bitmap: bytes, key_names: Sequence[str]) -> frozenset[str]:
    """The names of the keys a presence bitmap sets (the inverse of :func:`presence_bits`);
    bits beyond ``key_names`` and bytes beyond the bitmap are not keys."""
    return frozenset(
        name
        for i, name in enumerate(key_names)
        if i // 8 < len(bitmap) and bitmap[i // 8] >> (i % 8) & 1
    )


def xor_bytes(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


_ENTRY_BATCH: Final = 1 << 18


def entries_of(
    outputs: Sequence[bytes],
    inverse: npt.NDArray[np.intp],
    js: npt.NDArray[np.uint32],
    plain: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]:
    """Tags and encrypted labels of occurrences (their output index, ``j`` and plain label),
    in batches so that the digests never all exist as Python objects at once."""
    n, width = plain.shape
    tags = np.zeros(n, dtype=np.uint64)
    labels = np.zeros((n, width), dtype=np.uint8)
    prefix = len(ENTRY_DST).to_bytes(4, "big") + ENTRY_DST
    sha512 = hashlib.sha512
    for start in range(0, n, _ENTRY_BATCH):
        end = min(start + _ENTRY_BATCH, n)
        digests = b"".join(
            sha512(prefix + outputs[o] + j.to_bytes(4, "big")).digest()
            for o, j in zip(inverse[start:end].tolist(), js[start:end].tolist(), strict=True)
        )
        d = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 64)
        tags[start:end] = d[:, :TAG_SIZE].copy().view(TAG_DTYPE).ravel()
        labels[start:end] = plain[start:end] ^ d[:, TAG_SIZE : TAG_SIZE + width]
    return tags, labels


#: What reading a saved table (``np.load`` of an ``.npz`` written by :meth:`AskerTable.save`
#: or ``HolderTable.save``) raises when the file is damaged, cut short or not one: the table is
#: then built or fetched again, never a crash of the service (a zip that does not open, an
#: empty file, a header naming more entries than memory holds, a nesting too deep).
UNREADABLE_TABLE: tuple[type[Exception], ...] = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    EOFError,
    zipfile.BadZipFile,
    NotImplementedError,
    RecursionError,
    MemoryError,
)
