"""The Python API inside an async service: two agencies' exchanges over real mutual TLS.

Each agency runs a ``LinkageService`` around an :class:`xlink.agency.Agency`. When the service
starts it opens its agency (keys, the MOU both signed, the partner's public bundle, and in its
own working directory the audit log, the release store and the outbound ledger) and loads and
tokenises its files in a worker thread, so the event loop stays free. ``async def
check_manifest(...)`` then runs one whole exchange with the partner over TLS 1.3, the
certificate pinned by the signed MOU: the private set intersection, the decisions, the check
that both sides decided the same pairs, and each side's matched records released to the other
under the MOU, with receipts — every step in the agency's tamper-evident audit log. The
service reports counts and its own record ids; what the partner released waits in the store
(``inbox()`` lists it without opening anything; ``Agency.store.read`` opens one for a purpose).
Here both services run in one event loop on 127.0.0.1; in production each runs on its own
agency's network. Run:

    python examples/embed_in_service.py [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from xlink.agency import Agency, AgencyOutcome
from xlink.ceremony import demo_ceremony
from xlink.crypto.rand import DeterministicRandom, RandomSource, system_random
from xlink.prepare import PreparedSide
from xlink.samples import sample_path

CA, US = "CA-RCMP", "US-DHS"
FILES = {CA: ["ca_watchlist.csv", "ca_sex_offenders.csv"], US: ["us_travellers.csv"]}
PASSPHRASE = b"example passphrase, not a secret"  # a real service reads it from its secrets


@dataclass(frozen=True)
class ServiceConfig:
    """Where one agency's service finds what it needs: all of it local to the agency."""

    agency: str
    workdir: Path  # audit log, release store, outbound ledger, matches files, rejects
    keys_dir: Path  # its encrypted keys (``xlink keys generate``)
    mou: Path  # the MOU both agencies signed
    peer_bundle: Path  # the partner's public bundle, exchanged with the MOU
    files: Sequence[Path]


@dataclass(frozen=True)
class CheckReport:
    """What one agency's service reports after a check: ids and counts, no partner data."""

    agency: str
    role: str
    session_id: str
    records: int
    candidates: int
    matched: int
    first_matches: list[str]  # the agency's OWN record ids, from its matches file
    released: dict[str, int]  # by category, each receipted by the partner
    received: dict[str, int]  # by category, stored sealed in the agency's store
    receipts_verified: int
    audit_ok: bool
    audit_entries: int

    @classmethod
    def of(cls, outcome: AgencyOutcome) -> CheckReport:
        with open(outcome.matches_file, encoding="utf-8", newline="") as f:
            own = sorted(row["own_record_id"] for row in csv.DictReader(f))
        return cls(
            agency=outcome.agency,
            role=outcome.role,
            session_id=outcome.session_id,
            records=outcome.records,
            candidates=outcome.candidates,
            matched=outcome.decided,
            first_matches=own[:3],
            released=outcome.released,
            received=outcome.received,
            receipts_verified=outcome.receipts_verified,
            audit_ok=outcome.audit_ok,
            audit_entries=outcome.audit_entries,
        )


class LinkageService:
    """One agency's linkage service: ``async with`` it (or ``start()`` / ``stop()``), then
    ``check_manifest()`` per exchange. One service per working directory: the agency holds
    its lock while the service runs."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        passphrase: bytes,
        clock: Callable[[], datetime],
        rng: RandomSource,
    ) -> None:
        self.config = config
        self._passphrase = passphrase
        self._clock = clock
        self._rng = rng
        self._agency: Agency | None = None
        self._side: PreparedSide | None = None

    async def start(self) -> None:
        """Open the agency, then load and tokenise its files off the event loop. Raises
        ``InputError`` (unusable keys, a bundle or MOU that is not the partner's, the workdir
        in use), ``MouRefused`` and ``SchemaMismatch`` before any partner connects."""
        c = self.config
        # Opened in the event loop's thread: the agency's SQLite stores stay in that thread.
        self._agency = Agency.open(
            c.workdir,
            agency=c.agency,
            keys_dir=c.keys_dir,
            passphrase=self._passphrase,
            mou_path=c.mou,
            peer_bundle_path=c.peer_bundle,
            clock=self._clock,
            rng=self._rng,
        )
        self._side = await asyncio.to_thread(self._agency.prepare, c.files)

    def stop(self) -> None:
        if self._agency is not None:
            self._agency.close()
            self._agency = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def check_manifest(
        self,
        host: str,
        port: int,
        *,
        listen: bool = False,
        on_listening: Callable[[int], object] | None = None,
    ) -> CheckReport:
        """Run one exchange with the MOU partner: listen for it (``listen=True``; the bound
        port goes to ``on_listening``) or connect to it. Raises ``PeerRefused`` when no pinned
        partner answers in time, ``InputError`` when the MOU's daily budget is spent, and a
        ``ProtocolError`` when the exchange aborts (each audited)."""
        assert self._agency is not None and self._side is not None, "call start() first"
        if listen:
            outcome = await self._agency.serve(
                self._side, host, port, timeout=10.0, on_listening=on_listening
            )
        else:
            outcome = await self._agency.match(self._side, host, port, timeout=10.0)
        return CheckReport.of(outcome)

    def inbox(self) -> dict[str, int]:
        """What the partner has released to this agency and the store still holds, by
        category: metadata only, nothing opened (opening is ``store.read``, audited)."""
        assert self._agency is not None, "call start() first"
        held = self._agency.store.list(self._clock())
        return dict(sorted(Counter(r.category.value for r in held if not r.expired).items()))


async def run(work: Path) -> dict[str, Any]:
    now = datetime.now(UTC)  # OpenSSL checks the certificates' validity against the real clock
    # Keys for both agencies and the MOU both signed (docs/keys.md §5 in one call). Seeded for
    # the example; a real agency generates its keys with system_random. Straight-through
    # release: with the template's approval_required, releases wait in each agency's outbound
    # ledger (Agency.queue) for an officer, and the next exchange sends the approved ones.
    ceremony = demo_ceremony(
        work / "ceremony",
        passphrase=PASSPHRASE,
        now=now,
        rng=DeterministicRandom("embed-example/ceremony"),
        approval_required=False,
    )
    ca_config, us_config = (
        ServiceConfig(
            agency=agency,
            workdir=work / agency.lower(),
            keys_dir=ceremony.keys[agency],
            mou=ceremony.mou,
            peer_bundle=ceremony.bundles[peer],
            files=[sample_path(name) for name in FILES[agency]],
        )
        for agency, peer in ((CA, US), (US, CA))
    )

    def service(config: ServiceConfig) -> LinkageService:
        return LinkageService(
            config, passphrase=PASSPHRASE, clock=lambda: datetime.now(UTC), rng=system_random
        )

    async with service(ca_config) as ca, service(us_config) as us:
        # The US listens on an ephemeral port; Canada connects once it is bound.
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(
            us.check_manifest("127.0.0.1", 0, listen=True, on_listening=bound.set_result)
        )
        first: list[asyncio.Future[Any]] = [bound, serving]
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            serving.result()  # the listener failed before binding: raise its error
        ca_report, us_report = await asyncio.gather(
            ca.check_manifest("127.0.0.1", bound.result()), serving
        )
        return {
            "canada": {**asdict(ca_report), "inbox": ca.inbox()},
            "usa": {**asdict(us_report), "inbox": us.inbox()},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        reports = asyncio.run(run(Path(work)))
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    for r in reports.values():
        print(
            f"{r['agency']} ({r['role']}): {r['records']} records, {r['matched']} matched "
            f"(of {r['candidates']} candidate pairs), e.g. {', '.join(r['first_matches'])}"
        )
        released = ", ".join(f"{k} {v}" for k, v in r["released"].items()) or "none"
        inbox = ", ".join(f"{k} {v}" for k, v in r["inbox"].items()) or "empty"
        print(f"    released {released} ({r['receipts_verified']} receipted); inbox {inbox}")
        print(
            f"    session {r['session_id'][:16]}… over mutual TLS; audit log "
            f"{'verified' if r['audit_ok'] else 'FAILED'} ({r['audit_entries']} entries)"
        )


if __name__ == "__main__":
    main()
