"""The information-sharing hub (docs/hub.md, protocols/xlink-hub-v1.md): many agencies under one
multilateral MOU connect out to a relay that schedules their pairwise exchanges and carries
fan-out queries, while each pair still authenticates end to end with its own MOU-pinned TLS.

- :class:`Hub` — the relay and scheduler (``xlink hub serve``);
- :class:`HubAgent` — an agency's standing connection to it (``xlink hub agent``);
- :func:`ask_partners` — one query fanned out to every partner allowed (``xlink hub ask``);
- :func:`combined_matches` — which of our records matched which partners (``xlink hub
  matches``).
"""

from __future__ import annotations

from xlink.hub.agent import AgentFiles, HubAgent, partner_workdir, partners_of
from xlink.hub.client import HubAddress
from xlink.hub.fanout import PartnerAnswer, ask_partners
from xlink.hub.server import Hub

__all__ = [
    "AgentFiles",
    "Hub",
    "HubAddress",
    "HubAgent",
    "PartnerAnswer",
    "ask_partners",
    "partner_workdir",
    "partners_of",
]
