"""A real two-agency run over mutual TLS on 127.0.0.1 for the adversarial tests: US-DHS
(`serve`, honest: the side under test) against CA-RCMP (`match`, the partner), each through
`run_agency`, in one event loop, on small subsets of the bundled watchlists."""

from __future__ import annotations

import asyncio
import csv
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import xlink.runner as runner
from xlink.audit import AuditEvent, AuditLog, verify_log
from xlink.ceremony import demo_ceremony
from xlink.crypto.keyfiles import load_public_bundle
from xlink.crypto.rand import system_random

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "xlink" / "data"
TIMEOUT = 5.0  # a hang fails the test instead of blocking it
CA, US = "CA-RCMP", "US-DHS"

PASSPHRASE = b"dishonest release tests, not secret"
# Ten people on both lists (xlink/data/truth.csv) and a few on one side only.
CA_IDS = [f"CAWL-{i:05d}" for i in (1, 2, 3, 4, 5, 12, 14, 20, 21, 22, 25, 26, 28)]
US_IDS = [f"USWL-{i:05d}" for i in (1, 2, 3, 71, 20, 197, 131, 275, 204, 238, 49, 154, 190)]


def _subset(source: Path, directory: Path, ids: Sequence[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    kept = [rows[0], *(r for r in rows[1:] if r[0] in ids)]
    assert len(kept) == len(ids) + 1
    target = directory / source.name
    with target.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(kept)
    mapping = source.with_name(source.stem + ".mapping.json")  # how its columns map
    (directory / mapping.name).write_bytes(mapping.read_bytes())
    return target


class Agencies:
    """US-DHS (`serve`, honest: the side under test) and CA-RCMP (`match`, the partner)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ceremony = demo_ceremony(
            base / "ceremony",
            passphrase=PASSPHRASE,
            now=datetime.now(UTC),
            rng=system_random,
            approval_required=False,
        )
        self.files = {
            US: [_subset(DATA / "us_watchlist.csv", base / "us-data", US_IDS)],
            CA: [_subset(DATA / "ca_watchlist.csv", base / "ca-data", CA_IDS)],
        }

    async def _run(self, role: str, agency: str, peer: str, port: int, **kw: Any) -> Any:
        c = self.ceremony
        return await runner.run_agency(
            role,  # type: ignore[arg-type]
            agency=agency,
            files=self.files[agency],
            keys_dir=c.keys[agency],
            passphrase=PASSPHRASE,
            mou_path=c.mou,
            peer_bundle_path=c.bundles[peer],
            host="127.0.0.1",
            port=port,
            workdir=self.base / agency,
            now_clock=lambda: datetime.now(UTC),
            rng=system_random,
            timeout=TIMEOUT,
            idle_timeout=TIMEOUT,
            **kw,
        )

    def run(self) -> dict[str, Any]:
        """Both runs; each value is the AgencyOutcome or the exception it raised."""

        async def scenario() -> tuple[Any, Any]:
            listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            serving = asyncio.create_task(
                self._run("serve", US, CA, 0, on_listening=listening.set_result)
            )
            port = await asyncio.wait_for(listening, TIMEOUT)
            return await asyncio.wait_for(
                asyncio.gather(serving, self._run("match", CA, US, port), return_exceptions=True),
                6 * TIMEOUT,
            )

        us, ca = asyncio.run(scenario())
        return {US: us, CA: ca}

    def audit(self, agency: str) -> list[tuple[AuditEvent, dict[str, Any]]]:
        path = self.base / agency / "audit.db"
        key = load_public_bundle(self.ceremony.bundles[agency]).verify_key
        assert verify_log(path, key).ok
        with AuditLog.open(path, signing_key=None) as log:
            return [(e.kind, dict(e.fields)) for e in log.entries()]

    def stored(self, agency: str) -> int:
        """Rows in the agency's store of received releases, read with plain SQLite."""
        conn = sqlite3.connect(self.base / agency / "store.db")
        try:
            return int(conn.execute("SELECT count(*) FROM releases").fetchone()[0])
        finally:
            conn.close()
