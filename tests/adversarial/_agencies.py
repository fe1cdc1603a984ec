"""A real two-agency run over mutual TLS on 127.0.0.1 for the adversarial tests: US-DHS
(`serve`, honest: the side under test) against CA-RCMP (`match`, the partner), each through
`xlink.agency.run_agency`, in one event loop, on small subsets of the bundled watchlists."""

from __future__ import annotations

from pathlib import Path

from _two_agencies import CA, US, TwoAgencies, small_files

__all__ = ["CA", "PASSPHRASE", "TIMEOUT", "US", "Agencies"]

TIMEOUT = 5.0  # a hang fails the test instead of blocking it

PASSPHRASE = b"dishonest release tests, not secret"


class Agencies(TwoAgencies):
    """US-DHS (`serve`, honest: the side under test) and CA-RCMP (`match`, the partner), on
    small subsets of the bundled watchlists, straight-through release."""

    def __init__(self, base: Path) -> None:
        super().__init__(
            base,
            small_files(base),
            passphrase=PASSPHRASE,
            timeout=TIMEOUT,
        )
