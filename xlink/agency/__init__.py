"""One agency under one MOU, and the one way to run an exchange (docs/embedding.md).

:class:`Agency` holds the keys, the MOU and the linkage schema it names, the audit log, the
release store, the outbound ledger, a clock and a source of randomness; :meth:`Agency.exchange`
runs one whole exchange over a connection. ``xlink serve`` / ``xlink match`` call
:meth:`Agency.serve` / :meth:`Agency.match`; an in-process exchange is
:func:`exchange_in_process` (two agencies on a memory pair).
"""

from xlink.agency._agency import Agency
from xlink.agency._in_process import exchange_in_process, query_in_process
from xlink.agency._matches import COLUMNS as MATCHES_COLUMNS
from xlink.agency._matches import MatchRow, read_matches
from xlink.agency._outcome import AgencyOutcome
from xlink.agency._query import (
    QueryClient,
    QueryOutcome,
    QueryServed,
    QueryService,
    TravellerAnswer,
)
from xlink.agency._run import RoleName, run_agency
from xlink.agency._schema import SCHEMA_SIDECAR_SUFFIX, schema_for_mou
from xlink.errors import SchemaMismatch

__all__ = [
    "MATCHES_COLUMNS",
    "SCHEMA_SIDECAR_SUFFIX",
    "Agency",
    "AgencyOutcome",
    "MatchRow",
    "QueryClient",
    "QueryOutcome",
    "QueryServed",
    "QueryService",
    "RoleName",
    "SchemaMismatch",
    "TravellerAnswer",
    "exchange_in_process",
    "query_in_process",
    "read_matches",
    "run_agency",
    "schema_for_mou",
]
