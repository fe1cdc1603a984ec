"""Build a SYNTHETIC cross-border data set and its ground truth (``xlink synth``, docs/synth.md).

:func:`build_synth` does everything in memory from one ``random.Random(seed)``: people
(:mod:`~xlink.synth.population`), each agency's independently corrupted records
(:mod:`~xlink.synth.corrupt`), record ids in shuffled order, the true pairs, the dev/held-out
split by household, and the manifest. :func:`generate_synth` writes it
(:mod:`~xlink.synth.writer`). Same ``n``, ``seed`` and ``overlap``: byte-identical files.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xlink.synth.corrupt import (
    ADDRESS_TAGS,
    DOB_TAGS,
    FORMAT_TAGS,
    NAME_TAGS,
    RATES,
    Draft,
    draft_record,
)
from xlink.synth.names import CULTURES
from xlink.synth.population import Population, build_population
from xlink.synth.writer import (
    CA_COLUMNS,
    MAPPING,
    US_COLUMNS,
    csv_bytes,
    json_bytes,
    row_for,
    write_files,
)

__all__ = [
    "DUPLICATE_RATE",
    "GENERATOR",
    "GENERATOR_VERSION",
    "SynthData",
    "SynthRecord",
    "build_synth",
    "generate_synth",
]

GENERATOR = "xlink-synth"
#: Bumped whenever the same seed would give different files.
GENERATOR_VERSION = "1.0"
#: Share of each agency's records that are a second record of a person it already lists.
DUPLICATE_RATE = 0.015
PROGRESS_EVERY = 10_000

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class SynthRecord:
    """One written record and the truth behind it (for tests and evaluation, never written)."""

    record_id: str
    side: str  # "ca" or "us"
    person: int  # the underlying person's id: equal ids are the same person
    household: int
    tags: tuple[str, ...]  # corruptions applied (see xlink.synth.corrupt.RATES)
    row: tuple[str, ...]  # the CSV row, in the agency's columns


@dataclass(frozen=True, slots=True)
class SynthData:
    """A whole data set in memory: records, truth, split, manifest and the people behind them."""

    ca: tuple[SynthRecord, ...]
    us: tuple[SynthRecord, ...]
    truth: tuple[tuple[str, str], ...]  # sorted
    split: dict[str, str]  # CA record id -> "dev" | "heldout"
    population: Population
    manifest: dict[str, object]

    def files(self) -> dict[str, bytes]:
        """Every output file's name and content."""
        return {
            "ca.csv": csv_bytes(CA_COLUMNS, (r.row for r in self.ca)),
            "ca.mapping.json": json_bytes(MAPPING["ca"]),
            "us.csv": csv_bytes(US_COLUMNS, (r.row for r in self.us)),
            "us.mapping.json": json_bytes(MAPPING["us"]),
            "truth.csv": csv_bytes(("ca_record_id", "us_record_id"), self.truth),
            "split.csv": csv_bytes(("ca_record_id", "split"), sorted(self.split.items())),
            "manifest.json": json_bytes(self.manifest),
        }


def _side_records(
    rng: random.Random,
    population: Population,
    side: str,
    done: list[int],
    progress: Progress | None,
) -> tuple[SynthRecord, ...]:
    """Draft every record of ``side``, shuffle them, number them, write their rows."""
    pids = population.ca if side == "ca" else population.us
    drafts: list[Draft] = []
    for pid in pids:
        drafts.append(draft_record(rng, population.people[pid], side))
        done[0] += 1
        if progress is not None and done[0] % PROGRESS_EVERY == 0:
            progress(done[0])
    rng.shuffle(drafts)
    prefix = side.upper()
    out = []
    for number, d in enumerate(drafts, start=1):
        record_id = f"{prefix}-{number:07d}"
        person = population.people[d.pid]
        out.append(
            SynthRecord(
                record_id,
                side,
                d.pid,
                person.household,
                tuple(d.tags),
                tuple(row_for(rng, d, record_id)),
            )
        )
    return tuple(out)


def _counts(records: tuple[SynthRecord, ...]) -> dict[str, int]:
    counter = Counter(tag for r in records for tag in r.tags)
    return {tag: counter[tag] for tag in sorted(counter)}


def _pair_rates(truth: list[tuple[str, str]], tags: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Share of true pairs where either record changes a name, the birth date, the address."""
    if not truth:
        return {"name_differs": 0.0, "dob_differs": 0.0, "address_differs": 0.0, "any_differs": 0.0}
    kinds = {"name_differs": NAME_TAGS, "dob_differs": DOB_TAGS, "address_differs": ADDRESS_TAGS}
    out: dict[str, float] = {}
    hit_any = 0
    hits = dict.fromkeys(kinds, 0)
    for ca, us in truth:
        both = set(tags[ca]) | set(tags[us])
        any_hit = False
        for key, kind in kinds.items():
            if both & kind:
                hits[key] += 1
                any_hit = True
        hit_any += any_hit
    for key in kinds:
        out[key] = round(hits[key] / len(truth), 4)
    out["any_differs"] = round(hit_any / len(truth), 4)
    return out


def build_synth(
    n: int, seed: int, *, overlap: float = 0.5, progress: Progress | None = None
) -> SynthData:
    """Build the data set in memory (see :func:`generate_synth`).

    Raises:
        ValueError: ``n < 1`` or ``overlap`` outside [0, 1].
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError("overlap must be between 0 and 1")
    rng = random.Random(seed)
    population = build_population(rng, n, overlap, DUPLICATE_RATE)
    done = [0]
    ca = _side_records(rng, population, "ca", done, progress)
    us = _side_records(rng, population, "us", done, progress)

    us_by_person: dict[int, list[str]] = {}
    for r in us:
        us_by_person.setdefault(r.person, []).append(r.record_id)
    truth = sorted((c.record_id, u) for c in ca for u in us_by_person.get(c.person, ()))

    households = sorted({r.household for r in ca})
    split_of = {h: ("dev" if rng.random() < 0.5 else "heldout") for h in households}
    split = {r.record_id: split_of[r.household] for r in ca}

    tags = {r.record_id: r.tags for r in (*ca, *us)}
    ca_people = len(set(population.ca))
    dev = sum(1 for s in split.values() if s == "dev")
    manifest: dict[str, object] = {
        "generator": {"name": GENERATOR, "version": GENERATOR_VERSION},
        "synthetic": True,
        "n": n,
        "seed": seed,
        "overlap": overlap,
        "counts": {
            "ca_records": len(ca),
            "us_records": len(us),
            "people": len(population.people),
            "people_per_side": ca_people,
            "shared_people": population.shared,
            "true_pairs": len(truth),
            "households": population.households,
            "twins": len(population.twins),
            "within_side_duplicates": {
                "ca": population.duplicates_ca,
                "us": population.duplicates_us,
            },
            "split": {"dev": dev, "heldout": len(split) - dev},
            "cultures": len(CULTURES),
        },
        "overlap_measured": round(population.shared / ca_people, 4) if ca_people else 0.0,
        "corruptions": {"ca": _counts(ca), "us": _counts(us)},
        "format_variations": sorted(FORMAT_TAGS),
        "rates": {k: list(v) if isinstance(v, tuple) else v for k, v in RATES.items()},
        "pair_rates": _pair_rates(truth, tags),
        "files": ["ca.csv", "ca.mapping.json", "us.csv", "us.mapping.json", "truth.csv",
                  "split.csv"],
    }  # fmt: skip
    if progress is not None and done[0] % PROGRESS_EVERY:
        progress(done[0])
    return SynthData(ca, us, tuple(truth), split, population, manifest)


def generate_synth(
    out_dir: Path,
    n: int,
    seed: int,
    *,
    overlap: float = 0.5,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Write a synthetic two-agency data set of ``n`` records per agency into ``out_dir``.

    ``out_dir`` gets ``ca.csv`` + ``ca.mapping.json``, ``us.csv`` + ``us.mapping.json``,
    ``truth.csv`` (every same-person (CA, US) record pair), ``split.csv`` (dev or heldout for
    each CA record, by household) and ``manifest.json`` (written last). ``overlap`` is the share
    of each agency's distinct people that the other agency lists too. ``progress(records)`` is
    called every 10,000 records drafted and at the end. Existing files of the same names
    are replaced. Returns the manifest.

    Raises:
        ValueError: ``n < 1`` or ``overlap`` outside [0, 1].
        OSError: ``out_dir`` cannot be created or written.
    """
    data = build_synth(n, seed, overlap=overlap, progress=progress)
    write_files(Path(out_dir), data.files())
    return data.manifest
