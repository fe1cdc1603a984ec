"""Build a SYNTHETIC cross-border data set and its ground truth (``xlink synth``, docs/synth.md).

:func:`build_synth` does everything in memory from one ``random.Random(seed)``: people
(:mod:`~xlink.synth.population`), each agency's independently corrupted records
(:mod:`~xlink.synth.corrupt`), record ids in shuffled order, the true pairs, the dev/held-out
split by household, and the manifest. :func:`generate_synth` writes it
(:mod:`~xlink.synth.writer`). Same ``n``, ``seed``, ``overlap`` and ``profile``: byte-identical
files.

Two profiles (:data:`PROFILES`): ``cross-border`` (the default) writes two watchlists with
documents and addresses; ``names-dob-sex`` a census (``ca.csv``, one record per person) and a
vital-events registry (``us.csv``, 1 to 3 records per person, :data:`EVENTS_PER_PERSON`) with
names, date of birth and sex only (:func:`~xlink.synth.census.draft_names_dob_sex`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xlink.synth.census import (
    NAMES_DOB_SEX_DOB_TAGS,
    NAMES_DOB_SEX_FORMAT_TAGS,
    NAMES_DOB_SEX_NAME_TAGS,
    NAMES_DOB_SEX_RATES,
    draft_names_dob_sex,
)
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
from xlink.synth.population import Population, build_population, list_repeatedly
from xlink.synth.writer import (
    CA_COLUMNS,
    MAPPING,
    NAMES_DOB_SEX_COLUMNS,
    NAMES_DOB_SEX_DATE_ORDER,
    NAMES_DOB_SEX_MAPPING,
    US_COLUMNS,
    csv_bytes,
    json_bytes,
    names_dob_sex_row,
    row_for,
    write_files,
)

__all__ = [
    "DEFAULT_PROFILE",
    "DUPLICATE_RATE",
    "EVENTS_PER_PERSON",
    "GENERATOR",
    "GENERATOR_VERSION",
    "PROFILES",
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
#: The generator's profiles: ``cross-border`` (two watchlists, the default) and
#: ``names-dob-sex`` (a census and a vital-events registry: names, date of birth, sex only).
PROFILES = ("cross-border", "names-dob-sex")
DEFAULT_PROFILE = "cross-border"
#: names-dob-sex: how many registry (``us.csv``) records a person listed there has, and the
#: share of people with that many.
EVENTS_PER_PERSON: tuple[tuple[int, float], ...] = ((1, 0.6), (2, 0.3), (3, 0.1))
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
    profile: str = DEFAULT_PROFILE

    def files(self) -> dict[str, bytes]:
        """Every output file's name and content."""
        if self.profile == "names-dob-sex":
            columns, mapping = NAMES_DOB_SEX_COLUMNS, NAMES_DOB_SEX_MAPPING
            return {
                "ca.csv": csv_bytes(columns["ca"], (r.row for r in self.ca)),
                "ca.mapping.json": json_bytes(mapping["ca"]),
                "us.csv": csv_bytes(columns["us"], (r.row for r in self.us)),
                "us.mapping.json": json_bytes(mapping["us"]),
                "truth.csv": csv_bytes(("ca_record_id", "us_record_id"), self.truth),
                "split.csv": csv_bytes(("ca_record_id", "split"), sorted(self.split.items())),
                "manifest.json": json_bytes(self.manifest),
            }
        return {
            "ca.csv": csv_bytes(CA_COLUMNS, (r.row for r in self.ca)),
            "ca.mapping.json": json_bytes(MAPPING["ca"]),
            "us.csv": csv_bytes(US_COLUMNS, (r.row for r in self.us)),
            "us.mapping.json": json_bytes(MAPPING["us"]),
            "truth.csv": csv_bytes(("ca_record_id", "us_record_id"), self.truth),
            "split.csv": csv_bytes(("ca_record_id", "split"), sorted(self.split.items())),
            "manifest.json": json_bytes(self.manifest),
        }


def _truth_and_split(
    rng: random.Random, ca: Sequence[SynthRecord], us: Sequence[SynthRecord]
) -> tuple[dict[int, list[str]], list[tuple[str, str]], dict[str, str]]:
    """The US record ids of each person, every (ca, us) same-person pair in order, and the
    split of the Canadian records by household (about half each, drawn from ``rng``)."""
    us_by_person: dict[int, list[str]] = {}
    for r in us:
        us_by_person.setdefault(r.person, []).append(r.record_id)
    truth = sorted((c.record_id, u) for c in ca for u in us_by_person.get(c.person, ()))
    households = sorted({r.household for r in ca})
    split_of = {h: ("dev" if rng.random() < 0.5 else "heldout") for h in households}
    return us_by_person, truth, {r.record_id: split_of[r.household] for r in ca}


def _side_records(
    rng: random.Random,
    population: Population,
    side: str,
    done: list[int],
    progress: Progress | None,
    profile: str = DEFAULT_PROFILE,
) -> tuple[SynthRecord, ...]:
    """Draft every record of ``side``, shuffle them, number them, write their rows."""
    pids = population.ca if side == "ca" else population.us
    vital = profile == "names-dob-sex"
    drafts: list[Draft] = []
    for pid in pids:
        person = population.people[pid]
        if vital:
            drafts.append(draft_names_dob_sex(rng, person, side, NAMES_DOB_SEX_DATE_ORDER[side]))
        else:
            drafts.append(draft_record(rng, person, side))
        done[0] += 1
        if progress is not None and done[0] % PROGRESS_EVERY == 0:
            progress(done[0])
    rng.shuffle(drafts)
    prefix = side.upper()
    out = []
    for number, d in enumerate(drafts, start=1):
        record_id = f"{prefix}-{number:07d}"
        person = population.people[d.pid]
        row = names_dob_sex_row(d, record_id) if vital else row_for(rng, d, record_id)
        out.append(SynthRecord(record_id, side, d.pid, person.household, tuple(d.tags), tuple(row)))
    return tuple(out)


def _counts(records: tuple[SynthRecord, ...]) -> dict[str, int]:
    counter = Counter(tag for r in records for tag in r.tags)
    return {tag: counter[tag] for tag in sorted(counter)}


_CROSS_BORDER_KINDS = {
    "name_differs": NAME_TAGS,
    "dob_differs": DOB_TAGS,
    "address_differs": ADDRESS_TAGS,
}
_NAMES_DOB_SEX_KINDS = {
    "name_differs": NAMES_DOB_SEX_NAME_TAGS,
    "dob_differs": NAMES_DOB_SEX_DOB_TAGS,
    "sex_differs": frozenset({"sex_missing"}),
}


def _pair_rates(
    truth: list[tuple[str, str]],
    tags: dict[str, tuple[str, ...]],
    kinds: dict[str, frozenset[str]] | None = None,
) -> dict[str, float]:
    """Share of true pairs where either record carries a tag of each of ``kinds`` (by default:
    changes a name, the birth date, the address), and of any of them."""
    kinds = kinds or _CROSS_BORDER_KINDS
    if not truth:
        return {**dict.fromkeys(kinds, 0.0), "any_differs": 0.0}
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
    n: int,
    seed: int,
    *,
    overlap: float = 0.5,
    profile: str = DEFAULT_PROFILE,
    progress: Progress | None = None,
) -> SynthData:
    """Build the data set in memory (see :func:`generate_synth`).

    Raises:
        ValueError: ``n < 1``, ``overlap`` outside [0, 1], or ``profile`` not in
            :data:`PROFILES`.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError("overlap must be between 0 and 1")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
    if profile == "names-dob-sex":
        return _build_names_dob_sex(n, seed, overlap, progress)
    rng = random.Random(seed)
    population = build_population(rng, n, overlap, DUPLICATE_RATE)
    done = [0]
    ca = _side_records(rng, population, "ca", done, progress)
    us = _side_records(rng, population, "us", done, progress)

    _, truth, split = _truth_and_split(rng, ca, us)

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
    profile: str = DEFAULT_PROFILE,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Write a synthetic two-agency data set of ``n`` records per agency into ``out_dir``.

    ``out_dir`` gets ``ca.csv`` + ``ca.mapping.json``, ``us.csv`` + ``us.mapping.json``,
    ``truth.csv`` (every same-person (CA, US) record pair), ``split.csv`` (dev or heldout for
    each CA record, by household) and ``manifest.json`` (written last). ``overlap`` is the share
    of each agency's distinct people that the other agency lists too. ``progress(records)`` is
    called every 10,000 records drafted and at the end. Existing files of the same names
    are replaced. Returns the manifest.

    ``profile`` (:data:`PROFILES`): ``"cross-border"`` (the default) writes two watchlists;
    ``"names-dob-sex"`` a census as ``ca.csv`` (``n`` people, one record each) and a
    vital-events registry as ``us.csv`` (``n`` people, 1 to 3 records each, so about ``1.5 n``
    records), with names, date of birth and sex only.

    Raises:
        ValueError: ``n < 1``, ``overlap`` outside [0, 1], or an unknown ``profile``.
        OSError: ``out_dir`` cannot be created or written.
    """
    data = build_synth(n, seed, overlap=overlap, profile=profile, progress=progress)
    write_files(Path(out_dir), data.files())
    return data.manifest


def _names_dob_sex_rates() -> dict[str, object]:
    """The rates the names-dob-sex profile draws with (its own, and the cross-border ones it
    keeps), for the manifest."""
    kept = (
        "transliteration", "name_order_swap", "name_order_swap_family_first",
        "compound_dropped", "compound_hyphenated",
    )  # fmt: skip
    rates: dict[str, object] = {k: RATES[k] for k in kept}
    rates.update(NAMES_DOB_SEX_RATES)
    return {k: rates[k] for k in sorted(rates)}


def _build_names_dob_sex(n: int, seed: int, overlap: float, progress: Progress | None) -> SynthData:
    """The ``names-dob-sex`` profile (see :func:`generate_synth`)."""
    rng = random.Random(seed)
    population = build_population(rng, n, overlap, 0.0)
    people_per_side = len(population.us)
    population = list_repeatedly(rng, population, "us", EVENTS_PER_PERSON)
    done = [0]
    ca = _side_records(rng, population, "ca", done, progress, "names-dob-sex")
    us = _side_records(rng, population, "us", done, progress, "names-dob-sex")

    us_by_person, truth, split = _truth_and_split(rng, ca, us)

    events = Counter(len(ids) for ids in us_by_person.values())
    partners = Counter(ca for ca, _ in truth)
    tags = {r.record_id: r.tags for r in (*ca, *us)}
    dev = sum(1 for v in split.values() if v == "dev")
    manifest: dict[str, object] = {
        "generator": {"name": GENERATOR, "version": GENERATOR_VERSION},
        "synthetic": True,
        "profile": "names-dob-sex",
        "n": n,
        "seed": seed,
        "overlap": overlap,
        "counts": {
            "ca_records": len(ca),
            "us_records": len(us),
            "people": len(population.people),
            "people_per_side": people_per_side,
            "shared_people": population.shared,
            "true_pairs": len(truth),
            "ca_records_with_several_true_pairs": sum(1 for k in partners.values() if k > 1),
            "us_records_per_person": {str(k): events[k] for k in sorted(events)},
            "households": population.households,
            "twins": len(population.twins),
            "split": {"dev": dev, "heldout": len(split) - dev},
            "cultures": len(CULTURES),
        },
        "overlap_measured": round(population.shared / people_per_side, 4)
        if people_per_side
        else 0.0,
        "date_order": dict(NAMES_DOB_SEX_DATE_ORDER),
        "corruptions": {"ca": _counts(ca), "us": _counts(us)},
        "format_variations": sorted(NAMES_DOB_SEX_FORMAT_TAGS),
        "events_per_person": [list(e) for e in EVENTS_PER_PERSON],
        "rates": _names_dob_sex_rates(),
        "pair_rates": _pair_rates(truth, tags, _NAMES_DOB_SEX_KINDS),
        "files": ["ca.csv", "ca.mapping.json", "us.csv", "us.mapping.json", "truth.csv",
                  "split.csv"],
    }  # fmt: skip
    if progress is not None and done[0] % PROGRESS_EVERY:
        progress(done[0])
    return SynthData(ca, us, tuple(truth), split, population, manifest, "names-dob-sex")
