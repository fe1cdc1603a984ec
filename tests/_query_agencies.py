"""A holder (CA-RCMP: its sex-offender registry) and an asker (US-DHS: travellers) under one
signed MOU, opened in one process, for the query-mode tests."""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from xlink.agency import Agency
from xlink.ceremony import CeremonyFiles, demo_ceremony
from xlink.crypto.rand import DeterministicRandom, system_random
from xlink.prepare import PreparedSide

DATA = Path(__file__).resolve().parents[1] / "xlink" / "data"
CA, US = "CA-RCMP", "US-DHS"
PASSPHRASE = b"query tests passphrase, not a secret"


def truth_pairs() -> dict[str, str]:
    """US traveller id -> CA sex-offender id, for the people on both (xlink/data/truth.csv)."""
    with (DATA / "truth.csv").open(encoding="utf-8", newline="") as f:
        return {
            row["us_record_id"]: row["ca_record_id"]
            for row in csv.DictReader(f)
            if row["ca_file"] == "ca_sex_offenders.csv" and row["us_file"] == "us_travellers.csv"
        }


def traveller_file(directory: Path, ids: Sequence[str], name: str = "manifest.csv") -> Path:
    """The rows of ``ids`` from the bundled travellers file (with its mapping) under
    ``directory``."""
    source = DATA / "us_travellers.csv"
    with source.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    wanted = set(ids)
    kept = [rows[0], *(r for r in rows[1:] if r[0] in wanted)]
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    with target.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(kept)
    mapping = json.loads((DATA / "us_travellers.mapping.json").read_text(encoding="utf-8"))
    (directory / (target.stem + ".mapping.json")).write_text(json.dumps(mapping))
    return target


@dataclass
class QueryPair:
    ceremony: CeremonyFiles
    holder: Agency
    asker: Agency
    registry: PreparedSide
    base: Path

    def travellers(self, ids: Sequence[str], name: str = "manifest.csv") -> PreparedSide:
        return self.asker.prepare([traveller_file(self.base / "asker-files", ids, name)])


@contextlib.contextmanager
def query_pair(
    base: Path,
    *,
    quota: int | None = None,
    approval_required: bool = False,
    seed: str = "query",
) -> Iterator[QueryPair]:
    c = demo_ceremony(
        base / "ceremony",
        passphrase=PASSPHRASE,
        now=datetime.now(UTC),
        rng=system_random,
        approval_required=approval_required,
        query_quota_per_day=quota,
    )
    with c.open_agencies(
        {CA: base / CA, US: base / US},
        passphrase=PASSPHRASE,
        clock=lambda: datetime.now(UTC),
        rng_of=lambda a: DeterministicRandom(f"{seed}-{a}"),
    ) as agencies:
        registry = agencies[CA].prepare([DATA / "ca_sex_offenders.csv"])
        yield QueryPair(c, agencies[CA], agencies[US], registry, base)
