"""Fan-out queries through the hub (docs/hub.md, "Fan-out queries"): one traveller or manifest,
asked of every partner whose terms allow real-time queries, each in its own query session
(xlink-query-v1) over its own end-to-end TLS through the hub, under that partner's quota,
caveats and audit log. A partner that is offline, refuses or fails is reported as such; the
others still answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from xlink.agency import QueryClient, QueryOutcome
from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import RandomSource
from xlink.errors import HubError, PeerRefused, XlinkError
from xlink.hub.agent import AgentFiles
from xlink.hub.client import HubAddress, open_hub, relayed
from xlink.hub.wire import Purpose
from xlink.linkage.schema import schema_digest
from xlink.prepare import PreparedSide
from xlink.protocol.config import Role

__all__ = ["PartnerAnswer", "ask_partners"]


@dataclass(frozen=True, slots=True)
class PartnerAnswer:
    """One partner's answer: its :class:`~xlink.agency.QueryOutcome`, or why there is none
    (``error``: a reason code such as ``peer-offline``, ``no-terms``, ``quota_exhausted``)."""

    partner: str
    outcome: QueryOutcome | None = None
    error: str | None = None
    detail: str = ""


async def _ask_one(
    files: AgentFiles,
    address: HubAddress,
    workdir: Path,
    partner: str,
    travellers: Sequence[Path],
    *,
    clock: Callable[[], datetime],
    rng: RandomSource,
    timeout: float,
    idle_timeout: float,
    keys: AgencyKeys,
    sides: dict[bytes, PreparedSide],
) -> PartnerAnswer:
    try:
        with files.open_agency(workdir, partner, clock=clock, rng=rng, keys=keys) as agency:
            # The travellers are prepared once for all partners (they share the MOU's schema):
            # no await between the look-up and the store, so concurrent asks reuse it.
            digest = schema_digest(agency.schema)
            if digest not in sides:
                sides[digest] = agency.prepare(
                    list(travellers),
                    mappings=list(files.mappings) if files.mappings else None,
                    date_order=files.date_order,
                    bad_field=files.bad_field,
                    psi=False,  # a query: no PSI, so no hashing (and the list's cache is kept)
                )
            side = sides[digest]
            sock = await open_hub(
                address,
                agency=files.agency,
                signing_key=agency.keys.signing_key,
                purpose=Purpose.QUERY,
                peer=partner,
                clock=clock,
                rng=rng,
            )
            conn = await relayed(
                sock,
                role=Role.INITIATOR,
                tls=agency.tls_options(),
                where=f"{partner} through the hub",
                wait=timeout,
            )
            async with QueryClient(agency, conn, idle_timeout=idle_timeout) as client:
                outcome = await client.ask(side)
        return PartnerAnswer(partner, outcome)
    except HubError as exc:
        return PartnerAnswer(partner, error=exc.reason.value, detail=str(exc))
    except PeerRefused as exc:
        return PartnerAnswer(partner, error=exc.reason.value, detail=str(exc))
    except (XlinkError, OSError) as exc:
        code = getattr(exc, "code", None)
        reason = code.name.lower() if code is not None and hasattr(code, "name") else "failed"
        return PartnerAnswer(partner, error=reason, detail=str(exc))


async def ask_partners(
    files: AgentFiles,
    address: HubAddress,
    workdir: Path,
    partners: Sequence[str],
    travellers: Sequence[Path],
    *,
    clock: Callable[[], datetime],
    rng_of: Callable[[str], RandomSource],
    timeout: float = 15.0,
    idle_timeout: float = 60.0,
) -> list[PartnerAnswer]:
    """Ask each of ``partners`` about ``travellers`` (files of our records, with
    ``files.mappings``) at once, through the hub; one :class:`PartnerAnswer` each, in the
    order of ``partners``. Matched releases go into each partner's store, under its caveats."""
    keys = files.load_keys()
    sides: dict[bytes, PreparedSide] = {}
    return list(
        await asyncio.gather(
            *(
                _ask_one(
                    files,
                    address,
                    workdir,
                    partner,
                    travellers,
                    clock=clock,
                    rng=rng_of(partner),
                    timeout=timeout,
                    idle_timeout=idle_timeout,
                    keys=keys,
                    sides=sides,
                )
                for partner in partners
            )
        )
    )
