"""The bundled sample (``xlink/data``): four agency files, truth and manifest, from one seed.

Run ``python -m xlink.synth.bundled --out DIR`` to write them (``--out xlink/data`` rewrites the
bundled copy); the output is byte-identical from run to run, and a test checks that the bundled
files are exactly this output. Every person is SYNTHETIC (:mod:`xlink.synth`).

People come from :mod:`xlink.synth.population` (cultures, households, twins, married names) and
each record from :mod:`xlink.synth.corrupt`, corrupted independently, in the layouts of
:mod:`xlink.synth.agencies`: Canada's watchlist (300 records) and sex-offender registry (200),
the US watchlist (300) and a traveller manifest (500). :data:`OVERLAPS` people are on one
Canadian and one US file (some on both US files), about a fifth of each list; Canadian files
list mostly people living in Canada, US files mostly people living in the US. Each file also has
a few deliberately bad rows (:data:`~xlink.synth.agencies.BAD_ROWS`) for the loader to reject.

Files: each agency CSV with its ``*.mapping.json``; ``truth.csv`` with every (Canadian record,
US record) pair of the same person and the corruptions of both records; ``manifest.json`` with
each file's rows, loaded and rejected counts, the lines and reasons of its bad rows, and counts
of people, corruptions and pair difficulty.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xlink.synth.agencies import (
    BAD_ROWS,
    CA_SO,
    CA_WL,
    COLUMNS,
    ENCODINGS,
    FILES,
    MAPPINGS,
    PREFIXES,
    SIDES,
    US_TR,
    US_WL,
    agency_row,
    mapping_name,
)
from xlink.synth.corrupt import draft_record
from xlink.synth.generate import GENERATOR, GENERATOR_VERSION, _pair_rates
from xlink.synth.population import Person, _Builder, passport_number
from xlink.synth.writer import MANIFEST, csv_bytes, json_bytes, write_files

__all__ = [
    "OVERLAPS",
    "SEED",
    "SIZES",
    "TRIPLES",
    "BundledRecord",
    "BundledSample",
    "build_bundled",
    "main",
]

SEED = 20_240_611
#: Records each file loads (its bad rows come on top).
SIZES = {CA_WL: 300, CA_SO: 200, US_WL: 300, US_TR: 500}
#: People on both sides: (Canadian file, US file, how many).
OVERLAPS = ((CA_WL, US_WL, 50), (CA_WL, US_TR, 15), (CA_SO, US_TR, 35), (CA_SO, US_WL, 5))
TRIPLES = 10  # of the CA_WL/US_WL people, how many are also travellers (US_TR)
#: Share of each file's own people (not on the other side) who live in Canada; of the people
#: on both sides, :data:`SHARED_IN_CANADA`.
IN_CANADA = {CA_WL: 0.85, CA_SO: 0.85, US_WL: 0.15, US_TR: 0.15}
SHARED_IN_CANADA = 2 / 3
PEOPLE = 1800  # people generated (whole households): more than listed, so some are unlisted
#: Corruption rates that differ from :data:`xlink.synth.corrupt.RATES` for a file's layout: the
#: registry and the manifest have no alias column; the registry records fewer passports; the
#: manifest is read from passports (always a passport, a full date of birth, sex and
#: nationality, the middle names with the given names).
FILE_RATES: dict[str, dict[str, float]] = {
    CA_WL: {},
    CA_SO: {"alias": 0.0, "document_present": 0.30},
    US_WL: {},
    US_TR: {
        "alias": 0.0,
        "document_present": 1.0,
        "middle_in_given": 1.0,
        "dob_missing": 0.0,
        "dob_year_month": 0.0,
        "dob_year_only": 0.0,
        "sex_missing": 0.0,
        "nationality_missing": 0.0,
    },
}
MIDDLE_COLUMN = {CA_WL: False, CA_SO: True, US_WL: True, US_TR: False}
TRUTH = "truth.csv"
TRUTH_COLUMNS = (
    "ca_file", "ca_record_id", "us_file", "us_record_id", "ca_corruptions", "us_corruptions",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BundledRecord:
    """One row of a bundled file and the truth behind it (for tests, never written)."""

    file: str
    record_id: str
    person: int  # the underlying person's id: equal ids are the same person
    tags: tuple[str, ...]  # corruptions applied (xlink.synth.corrupt.RATES)
    row: tuple[str, ...]  # in the file's columns
    bad: str = ""  # why the loader must reject this row; "" for a good row


@dataclass(frozen=True, slots=True)
class BundledSample:
    """The whole bundled sample in memory."""

    rows: dict[str, tuple[BundledRecord, ...]]  # file -> rows in file order, bad rows included
    truth: tuple[tuple[str, str, str, str], ...]  # (ca_file, ca_id, us_file, us_id), sorted
    people: tuple[Person, ...]
    twins: tuple[tuple[int, int], ...]
    manifest: dict[str, object]

    def files(self) -> dict[str, bytes]:
        """Every file's name and content, the manifest last."""
        out: dict[str, bytes] = {}
        for file in FILES:
            text = csv_bytes(COLUMNS[file], (r.row for r in self.rows[file]))
            out[file] = text.decode("utf-8").encode(ENCODINGS[file])
            out[mapping_name(file)] = json_bytes(MAPPINGS[file])
        tags = {r.record_id: r.tags for rows in self.rows.values() for r in rows if not r.bad}
        out[TRUTH] = csv_bytes(
            TRUTH_COLUMNS,
            ((cf, c, uf, u, ";".join(tags[c]), ";".join(tags[u])) for cf, c, uf, u in self.truth),
        )
        out[MANIFEST] = json_bytes(self.manifest)
        return out


class _People:
    """Draws unlisted people, by where they live."""

    def __init__(self, rng: random.Random, people: Sequence[Person]) -> None:
        self.rng = rng
        self.pools = {
            country: [p.pid for p in people if p.home.country == country]
            for country in ("CAN", "USA")
        }
        for pool in self.pools.values():
            rng.shuffle(pool)

    def take(self, in_canada: float) -> int:
        first, other = ("CAN", "USA") if self.rng.random() < in_canada else ("USA", "CAN")
        pool = self.pools[first] or self.pools[other]
        return pool.pop()


def _lists(draw: _People) -> dict[str, list[int]]:
    """Each file's person ids: the shared people first, then the file's own."""
    lists: dict[str, list[int]] = {f: [] for f in FILES}
    for ca, us, count in OVERLAPS:
        for i in range(count):
            pid = draw.take(SHARED_IN_CANADA)
            lists[ca].append(pid)
            lists[us].append(pid)
            if ca == CA_WL and us == US_WL and i < TRIPLES:
                lists[US_TR].append(pid)
    for file in FILES:
        while len(lists[file]) < SIZES[file]:
            lists[file].append(draw.take(IN_CANADA[file]))
    return lists


def _draft(rng: random.Random, person: Person, file: str, record_id: str) -> BundledRecord:
    draft = draft_record(
        rng, person, SIDES[file], rates=FILE_RATES[file], middle_column=MIDDLE_COLUMN[file]
    )
    row = agency_row(rng, file, draft, record_id)
    # the traveller manifest has the middle names in given_names: its layout, not a corruption
    tags = tuple(t for t in draft.tags if file != US_TR or t != "middle_in_given")
    return BundledRecord(file, record_id, person.pid, tags, tuple(row))


def _with_bad_rows(
    rng: random.Random, file: str, good: list[BundledRecord], draw: _People, people: list[Person]
) -> list[BundledRecord]:
    """``good`` with the file's bad rows inserted in its second half."""
    rows = list(good)
    columns = COLUMNS[file]
    for k, (reason, breaker) in enumerate(BAD_ROWS[file], start=1):
        person = people[draw.take(1.0 if SIDES[file] == "ca" else 0.0)]
        record = _draft(rng, person, file, f"{PREFIXES[file]}-{len(good) + k:05d}")
        at = rng.randrange(len(rows) // 2, len(rows))
        values = dict(zip(columns, record.row, strict=True))
        if breaker is None:  # the id of an earlier good row
            values[columns[0]] = rng.choice([r for r in rows[:at] if not r.bad]).record_id
        else:
            breaker(values)
        row = tuple(values[c] for c in columns)
        rows.insert(at, BundledRecord(file, values[columns[0]], -1, record.tags, row, reason))
    return rows


def build_bundled(seed: int = SEED) -> BundledSample:
    """The bundled sample in memory. Deterministic: same seed, same bytes."""
    rng = random.Random(seed)
    builder = _Builder(rng)
    while len(builder.people) < PEOPLE:
        builder.household()
    people = builder.people
    draw = _People(rng, people)
    lists = _lists(draw)
    for pid in lists[US_TR]:  # every traveller shows a passport
        p = people[pid]
        if not p.passport:
            p.passport = passport_number(rng, p.nationality)

    rows: dict[str, tuple[BundledRecord, ...]] = {}
    files_info: dict[str, object] = {}
    for file in FILES:
        pids = lists[file]
        rng.shuffle(pids)
        good = [
            _draft(rng, people[pid], file, f"{PREFIXES[file]}-{n:05d}")
            for n, pid in enumerate(pids, start=1)
        ]
        rows[file] = tuple(_with_bad_rows(rng, file, good, draw, people))
        rejects = [(line, r.bad) for line, r in enumerate(rows[file], start=2) if r.bad]
        corruptions = Counter(t for r in good for t in r.tags)
        files_info[file] = {
            "mapping": mapping_name(file),
            "rows": len(rows[file]),
            "loaded": len(good),
            "rejected": len(rejects),
            "reject_lines": [line for line, _ in rejects],
            "reject_reasons": [reason for _, reason in rejects],
            "corruptions": dict(sorted(corruptions.items())),
        }

    us_of: dict[int, list[BundledRecord]] = {}
    for file in (US_WL, US_TR):
        for r in rows[file]:
            if not r.bad:
                us_of.setdefault(r.person, []).append(r)
    truth = sorted(
        (c.file, c.record_id, u.file, u.record_id)
        for file in (CA_WL, CA_SO)
        for c in rows[file]
        if not c.bad
        for u in us_of.get(c.person, ())
    )
    tags = {r.record_id: r.tags for recs in rows.values() for r in recs if not r.bad}
    listed = {pid for pids in lists.values() for pid in pids}
    ca_people = {pid for f in (CA_WL, CA_SO) for pid in lists[f]}
    us_people = {pid for f in (US_WL, US_TR) for pid in lists[f]}
    twins = tuple(builder.twins)
    by_files = Counter(f"{cf} / {uf}" for cf, _, uf, _ in truth)
    manifest: dict[str, object] = {
        "generator": {"name": GENERATOR, "version": GENERATOR_VERSION},
        "sample": "bundled",
        "synthetic": True,
        "seed": seed,
        "files": files_info,
        "truth": {"file": TRUTH, "pairs": len(truth), "by_files": dict(sorted(by_files.items()))},
        "people": {
            "listed": len(listed),
            "on_both_sides": len(ca_people & us_people),
            "households": len({people[pid].household for pid in listed}),
            "twins_split_across_sides": sum(
                1 for a, b in twins
                if (a in ca_people and b in us_people) or (b in ca_people and a in us_people)
            ),
        },
        "pair_rates": _pair_rates([(c, u) for _, c, _, u in truth], tags),
    }  # fmt: skip
    return BundledSample(rows, tuple(truth), tuple(people), twins, manifest)


def main(argv: list[str] | None = None) -> None:
    """Write the bundled sample into ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m xlink.synth.bundled",
        description="Write xlink's bundled SYNTHETIC sample (four agency files with their "
        "mappings, truth.csv and manifest.json) into DIR; the same bytes on every run.",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    args = parser.parse_args(argv)
    write_files(args.out, build_bundled().files())


if __name__ == "__main__":
    main()
