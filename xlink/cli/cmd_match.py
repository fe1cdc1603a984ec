"""``xlink match --peer HOST:PORT``: connect to the partner agency (which runs ``xlink serve``)
and run one exchange with it (docs/quickstart.md, "Two machines")."""

from __future__ import annotations

from typing import Any

from xlink.cli.cmd_serve import EXIT_CODES_HELP, add_exchange_options, host_port

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "match",
        help="connect to the partner agency and run one exchange",
        description="Connect to the other agency's `xlink serve` (mutual TLS 1.3, certificate "
        "pinned by the MOU), run one private set intersection, decide matches, exchange "
        "sealed releases and receipts, verify the audit log, and exit. " + EXIT_CODES_HELP,
    )
    p.add_argument(
        "--peer", required=True, type=host_port, metavar="HOST:PORT", help="the serving agency"
    )
    add_exchange_options(p)
    p.set_defaults(role="match")
