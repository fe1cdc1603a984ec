"""Two real agencies over mutual TLS on 127.0.0.1, in one event loop: US-DHS serves, CA-RCMP
matches, each through `xlink.agency.run_agency` (what `xlink serve` / `xlink match` run), in
its own workdir, as often as a test asks. Used by the adversarial and the end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlink.agency import Agency, AgencyOutcome, exchange_in_process, run_agency
from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.conformance.kit import AGENT_IDS, RUNNER_IDS, subset_file
from xlink.crypto.keyfiles import load_audit_verify_key
from xlink.crypto.rand import DeterministicRandom, system_random
from xlink.prepare import PreparedSide

DATA = Path(__file__).resolve().parents[1] / "xlink" / "data"
CA, US = "CA-RCMP", "US-DHS"
BUNDLED = {
    CA: [DATA / "ca_watchlist.csv", DATA / "ca_sex_offenders.csv"],
    US: [DATA / "us_watchlist.csv", DATA / "us_travellers.csv"],
}

Interrupt = tuple[str, Callable[[str, int], bool]]


def both_completed(out: dict[str, Any]) -> tuple[AgencyOutcome, AgencyOutcome]:
    """The two outcomes of :meth:`TwoAgencies.run` (US-DHS's, CA-RCMP's), after checking that
    neither run raised."""
    us, ca = out[US], out[CA]
    assert isinstance(us, AgencyOutcome), us
    assert isinstance(ca, AgencyOutcome), ca
    return us, ca


def small_files(base: Path) -> dict[str, list[Path]]:
    """Thirteen records of each bundled watchlist, ten people on both, written under ``base``:
    a real exchange in about a second."""
    return {
        US: [subset_file(DATA / "us_watchlist.csv", base / "us-data", AGENT_IDS)],
        CA: [subset_file(DATA / "ca_watchlist.csv", base / "ca-data", RUNNER_IDS)],
    }


class TwoAgencies:
    """US-DHS (`serve`) and CA-RCMP (`match`) with keys and a signed MOU of their own."""

    def __init__(
        self,
        base: Path,
        files: dict[str, Sequence[Path]],
        *,
        passphrase: bytes,
        timeout: float,
        approval_required: bool = False,
        linkage: dict[str, object] | None = None,
        suite_ids: dict[str, int] | None = None,
        reciprocal: bool = False,
    ) -> None:
        self.base = base
        self.suite_ids = suite_ids or {}  # the PSI suite each agency proposes (default: xlink's)
        self.files = {agency: list(paths) for agency, paths in files.items()}  # ours to change
        self.passphrase = passphrase
        self.timeout = timeout
        self.ceremony: CeremonyFiles = demo_ceremony(
            base / "ceremony",
            passphrase=passphrase,
            now=datetime.now(UTC),
            rng=system_random,
            approval_required=approval_required,
            linkage=linkage,
            reciprocal=reciprocal,
        )

    async def _run(self, role: str, agency: str, peer: str, port: int, **kw: Any) -> Any:
        c = self.ceremony
        return await run_agency(
            role,  # type: ignore[arg-type]
            agency=agency,
            files=self.files[agency],
            keys_dir=c.keys[agency],
            passphrase=self.passphrase,
            mou_path=c.mou,
            peer_bundle_path=c.bundles[peer],
            host="127.0.0.1",
            port=port,
            workdir=self.base / agency,
            now_clock=lambda: datetime.now(UTC),
            rng=system_random,
            timeout=self.timeout,
            idle_timeout=self.timeout,
            **({"suite_id": self.suite_ids[agency]} if agency in self.suite_ids else {}),
            **kw,
        )

    def run(self, interrupt: Interrupt | None = None) -> dict[str, Any]:
        """Both sides; each value is the AgencyOutcome or the exception it raised.
        ``interrupt=(agency, when)`` cancels that agency's run (as Ctrl-C does) at the first
        progress report ``when(phase, done)`` accepts."""

        async def scenario() -> dict[str, Any]:
            loop = asyncio.get_running_loop()
            listening: asyncio.Future[int] = loop.create_future()
            tasks: dict[str, asyncio.Task[AgencyOutcome]] = {}

            def watcher(agency: str) -> Callable[..., None]:
                def progress(phase: str, done: int, total: int | None = None) -> None:
                    if interrupt and interrupt[0] == agency and interrupt[1](phase, done):
                        tasks[agency].cancel()

                return progress

            tasks[US] = asyncio.create_task(
                self._run(
                    "serve", US, CA, 0, on_listening=listening.set_result, progress=watcher(US)
                )
            )
            port = await asyncio.wait_for(listening, self.timeout)
            tasks[CA] = asyncio.create_task(self._run("match", CA, US, port, progress=watcher(CA)))
            done = await asyncio.wait_for(
                asyncio.gather(*tasks.values(), return_exceptions=True), 6 * self.timeout
            )
            return dict(zip(tasks, done, strict=True))

        return asyncio.run(scenario())

    def rows(self, agency: str, db: str, sql: str) -> list[tuple[Any, ...]]:
        """Rows of one of the agency's databases, read with plain SQLite."""
        conn = sqlite3.connect(self.base / agency / db)
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()

    def stored_ids(self, agency: str) -> list[tuple[Any, ...]]:
        """The release ids in the agency's store of received releases."""
        return self.rows(agency, "store.db", "SELECT release_id FROM releases ORDER BY 1")

    def stored(self, agency: str) -> int:
        return len(self.stored_ids(agency))

    def ledger(self, agency: str) -> list[tuple[Any, ...]]:
        """(item, state, record id) of the agency's outbound ledger."""
        return self.rows(
            agency, "queue.db", "SELECT item_id, state, record_id FROM release_queue ORDER BY 1"
        )

    def audit(self, agency: str) -> list[tuple[AuditEvent, dict[str, Any]]]:
        """The agency's audit entries, after checking the log verifies."""
        path = self.base / agency / "audit.db"
        key = load_audit_verify_key(self.ceremony.keys[agency])  # the audit key signs it
        assert verify_log(path, key).ok
        with AuditLog.open(path, signing_key=None) as log:
            return [(e.kind, dict(e.fields)) for e in log.entries()]


@dataclass
class InProcess:
    """Two agencies exchanged once in one process (`exchange_in_process`), still open: their
    `Agency` objects (store, queue, keys), prepared sides and outcomes, by agency id."""

    ceremony: CeremonyFiles
    agencies: dict[str, Agency]
    sides: dict[str, PreparedSide]
    outcomes: dict[str, AgencyOutcome]


@contextlib.contextmanager
def exchanged_in_process(
    base: Path, files: dict[str, Sequence[Path]], *, passphrase: bytes, seed: str
) -> Iterator[InProcess]:
    """Keys and a straight-through MOU for both, one exchange over a memory pair (CA-RCMP
    initiates), then the open agencies; closed on leaving."""
    c = demo_ceremony(
        base / "ceremony",
        passphrase=passphrase,
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=False,
    )
    with c.open_agencies(
        {a: base / a for a in (CA, US)},
        passphrase=passphrase,
        clock=lambda: datetime.now(UTC),
        rng_of=lambda a: DeterministicRandom(f"{seed}-{a}"),
    ) as agencies:
        sides = {a: agencies[a].prepare(files[a]) for a in (CA, US)}
        ca, us = asyncio.run(
            exchange_in_process((agencies[CA], sides[CA]), (agencies[US], sides[US]))
        )
        yield InProcess(c, agencies, sides, {CA: ca, US: us})
