"""xlink: secure cross-border intelligence exchange.

Agencies normalise and tokenise their person records locally, find the people on both sides with a
private-set-intersection protocol, and release only the matched records under the MOU's caveats.
Importing ``xlink`` is cheap and has no side effects: heavy modules (pandas, recordlinkage) load
only where they are used.
"""

from xlink.errors import (
    AbortCode,
    DecryptionError,
    FieldError,
    InputError,
    InternalProtocolError,
    LoadError,
    LocalProtocolError,
    MouRefused,
    NothingLoaded,
    PeerRefused,
    PolicyDenied,
    ProtocolError,
    RemoteProtocolError,
    SchemaError,
    XlinkError,
)

__version__ = "0.1.0"

__all__ = [
    "AbortCode",
    "DecryptionError",
    "FieldError",
    "InputError",
    "InternalProtocolError",
    "LoadError",
    "LocalProtocolError",
    "MouRefused",
    "NothingLoaded",
    "PeerRefused",
    "PolicyDenied",
    "ProtocolError",
    "RemoteProtocolError",
    "SchemaError",
    "XlinkError",
    "__version__",
]
