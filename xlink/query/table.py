"""The holder's query table: one entry per token occurrence of its list, readable only with the
token's OPRF output (spec: xlink-query-v1 §5).

For every token ``t`` of every record, the holder computes the OPRF output ``y = F(k, t)``
under its key of the period (RFC 9497, :mod:`xlink.crypto.oprf9497`). The ``j``-th record
holding ``t`` (in the order the holder added them) gives one entry::

    d     = SHA-512(lp(ENTRY_DST) || y || u32(j))
    tag   = d[0:8]                      (big-endian unsigned 64-bit, the sort key)
    label = (u32(record) || presence) XOR d[8 : 8 + label_size]

``record`` is the holder's table index of the record and ``presence`` the bitmap of the schema
keys the record has a token for (bit ``i`` of byte ``i // 8`` for key ``i``, least significant
bit first). A removed record's entries stay with ``record = 0xFFFFFFFF`` and an empty
bitmap (a tombstone), so that the ``j`` of the other occurrences of the same token stay
contiguous. An asker holding ``y`` probes ``j = 0, 1, 2 ...`` until a tag is missing; without
``y`` an entry is 8 + label_size random-looking bytes. Equal tokens of different records give
unrelated entries, so the table shows the number of token occurrences and nothing about how
often a value repeats.

:class:`HolderTable` is the holder's side (build, update, delta since a version, the tokens of
one record for a release request); :class:`AskerTable` the asker's copy (merge a delta, look
up an output). Both keep their columns in numpy arrays, not a Python object per entry.
"""

from xlink.query.asker_table import AskerTable, TableHit
from xlink.query.entries import (
    DIGEST_DST,
    ENTRY_DST,
    TAG_SIZE,
    TOMBSTONE,
    entry_pad,
    label_size_for,
    presence_bits,
    table_digest,
)
from xlink.query.holder_table import HolderTable, UpdateStats

__all__ = [
    "DIGEST_DST",
    "ENTRY_DST",
    "TAG_SIZE",
    "TOMBSTONE",
    "AskerTable",
    "HolderTable",
    "TableHit",
    "UpdateStats",
    "entry_pad",
    "label_size_for",
    "presence_bits",
    "table_digest",
]
