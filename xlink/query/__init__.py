"""The real-time query mode, xlink-query-v1 (protocols/xlink-query-v1.md; docs/query.md).

:class:`HolderSession` and :class:`AskerSession` are the two sans-I/O state machines;
:mod:`xlink.query.table` the holder's table of OPRF entries and the asker's copy. An agency
runs the mode through :meth:`xlink.agency.Agency.serve_queries` and
:meth:`xlink.agency.Agency.ask`.
"""

from xlink.query.session import (
    AskerSession,
    Fate,
    HolderSession,
    QueryConfig,
    ReleaseAnswer,
    RequestedHit,
    SessionState,
    query_handle,
)
from xlink.query.table import AskerTable, HolderTable, TableHit, UpdateStats

__all__ = [
    "AskerSession",
    "AskerTable",
    "Fate",
    "HolderSession",
    "HolderTable",
    "QueryConfig",
    "ReleaseAnswer",
    "RequestedHit",
    "SessionState",
    "TableHit",
    "UpdateStats",
    "query_handle",
]
