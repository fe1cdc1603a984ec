"""The query table (spec: xlink-query-v1 §5): its entries (:mod:`xlink.query.entries`), the
holder's table (:mod:`xlink.query.holder_table`: build, update, delta since a version) and the
asker's copy (:mod:`xlink.query.asker_table`: merge, digest check, lookup), in one place."""

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
