"""Fixtures for the transport tests: TLS identities generated once per session.

OpenSSL checks certificate validity against the real clock, so the validity windows are built
around one reading of it, taken here and passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _transport_support import Identities

from xlink.crypto.tls_certs import TlsIdentity, make_tls_identity


@pytest.fixture(scope="session")
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="session")
def identities(now: datetime) -> Identities:
    day = timedelta(days=1)

    def valid(agency: str, seed: bytes, start: datetime = now - day) -> TlsIdentity:
        return make_tls_identity(agency, not_before=start, not_after=now + day, key_seed=seed)

    ca_seed = b"CA-RCMP tls key seed, tests only"
    return Identities(
        ca=valid("CA-RCMP", ca_seed),
        us=valid("US-DHS", b"US-DHS tls key seed, tests only!"),
        intruder=valid("CA-RCMP", b"intruder tls key seed, tests only"),
        ca_expired=make_tls_identity(
            "CA-RCMP", not_before=now - 10 * day, not_after=now - day, key_seed=ca_seed
        ),
        ca_twin=valid("CA-RCMP", ca_seed, start=now - 2 * day),
    )
