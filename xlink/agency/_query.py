"""The real-time query mode of one :class:`~xlink.agency.Agency` (xlink-query-v1; docs/query.md).

The holder (:class:`QueryService`, :mod:`._query_holder`) keeps its list as a table of OPRF
entries under its key of the month and answers each asker connection with a
:class:`~xlink.query.HolderSession`: the table (or what changed since the asker's copy),
blinded evaluations counted against the MOU's ``query_quota_per_day``, and, for the records
the asker decided, the same signed, sealed, caveated releases as the batch exchange, each
encrypted under a key only the holder of the matched tokens can derive. The asker
(:class:`QueryClient`, :func:`ask`, :mod:`._query_asker`) blinds its travellers' tokens, looks
the outputs up in its copy of the table, scores and decides the candidates with the MOU's
schema exactly as the batch path does, asks for the decided records' releases and stores them
(:mod:`._query_answers`).

Both sides audit counts, never content: ``QUERY_STARTED``, ``QUERY_EVALUATED`` (the quota's
unit), ``QUERY_REFUSED``, ``QUERY_ENDED``, and the release events of the batch path.
"""

from xlink.agency._query_asker import QueryClient, QueryOutcome, TravellerAnswer, ask
from xlink.agency._query_common import period_of
from xlink.agency._query_holder import QueryServed, QueryService

__all__ = [
    "QueryClient",
    "QueryOutcome",
    "QueryServed",
    "QueryService",
    "TravellerAnswer",
    "ask",
    "period_of",
]
