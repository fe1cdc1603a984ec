"""Generate the bundled sample files: SYNTHETIC people only, deterministic from one seed.

Run ``python -m xlink.data._generate [--out DIR]`` to rewrite the files in this directory (or in
``DIR``); the output is byte-identical from run to run, and the committed files are its output.

Four agency files, each with a ``*.mapping.json`` in its own agency's column names:
``ca_watchlist.csv`` and ``ca_sex_offenders.csv`` (Canada: DD/MM/YYYY dates, 3x5x2 gradings), and
``us_watchlist.csv`` and ``us_travellers.csv`` (United States: MM/DD/YYYY dates, Admiralty).

About a fifth of each list's people also appear on the other side, corrupted the way real
cross-border data is (a typo, another transliteration, given and family name swapped, day and
month swapped, the day missing, a passport on one side only). Households share a surname and an
address, twins a date of birth too. ``truth.csv`` lists every (Canadian record, US record) pair
that is the same person; ``manifest.json`` gives each file's expected loaded and rejected counts
and the lines of its deliberately bad rows.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from xlink.data import _names as names
from xlink.data._agencies import (
    CA_SO,
    CA_WL,
    MAPPINGS,
    NAME_COLUMNS,
    PREFIXES,
    US_TR,
    US_WL,
    payload,
    source,
)

SEED = 20_240_611
HERE = Path(__file__).resolve().parent
SIZES = {CA_WL: 300, CA_SO: 200, US_WL: 300, US_TR: 500}
# people on both sides: (Canadian file, US file, how many)
OVERLAPS = ((CA_WL, US_WL, 50), (CA_WL, US_TR, 15), (CA_SO, US_TR, 35), (CA_SO, US_WL, 5))
TRIPLES = 10  # of the CA_WL/US_WL people, how many also appear in US_TR
CORRUPTIONS = {
    "none": 25,
    "typo": 15,
    "transliteration": 20,
    "swapped_order": 10,
    "day_month_swap": 10,
    "missing_day": 10,
    "passport_one_side": 10,
}
PASSPORT_RATE = {CA_WL: 0.5, CA_SO: 0.3, US_WL: 0.6, US_TR: 1.0}


@dataclass(frozen=True)
class Person:
    culture: names.Culture
    family_base: names.Name  # the surname before any feminine ending
    given: names.Name
    family: names.Name
    middle: str
    sex: str
    dob: datetime.date
    nationality: str
    birth_place: str
    passport: str
    passport_expiry: datetime.date
    home: tuple[str, str, str, str]  # street, locality, region, postcode
    country: str


@dataclass(frozen=True)
class Entry:
    """One person as one file records them, after any corruption."""

    person: Person
    given: str
    family: str
    dob: str  # already in the file's format
    passport: bool
    corruption: str = "none"


def _new_person(rng: random.Random, country: str, like: Person | None = None) -> Person:
    """A fresh person living in ``country``; with ``like``, a member of ``like``'s household."""
    culture = like.culture if like else rng.choice(names.CULTURES)
    sex = rng.choice("FM")
    givens = culture.given_f if sex == "F" else culture.given_m
    family = like.family_base if like else rng.choice(culture.family)
    nationality = country if rng.random() < 0.6 else culture.nationality
    passport = names.passport_number(rng, nationality) if rng.random() < 0.7 else ""
    return Person(
        culture=culture,
        family_base=family,
        given=rng.choice(givens),
        family=tuple(names.family_for(f, sex, culture) for f in family),
        middle=rng.choice(givens)[0] if rng.random() < 0.25 else "",
        sex=sex,
        dob=datetime.date(1945, 1, 1) + datetime.timedelta(days=rng.randrange(21_900)),
        nationality=nationality,
        birth_place=rng.choice(culture.birth_places),
        passport=passport,
        passport_expiry=datetime.date(2026, 1, 1) + datetime.timedelta(days=rng.randrange(3650)),
        home=like.home if like else names.address(rng, country),
        country=like.country if like else country,
    )


def _date(d: datetime.date, file: str, rng: random.Random) -> str:
    if file.startswith("ca_"):
        return d.isoformat() if rng.random() < 0.05 else f"{d.day:02d}/{d.month:02d}/{d.year}"
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def _entry(rng: random.Random, p: Person, file: str, corruption: str = "none") -> Entry:
    """Record ``p`` in ``file``, applying ``corruption``; the entry names the one applied."""
    e = Entry(
        p, p.given[0], p.family[0], _date(p.dob, file, rng), rng.random() < PASSPORT_RATE[file]
    )
    e = replace(e, passport=e.passport and bool(p.passport))
    if corruption == "typo":
        if rng.random() < 0.5:
            return replace(e, given=names.typo(rng, e.given), corruption=corruption)
        return replace(e, family=names.typo(rng, e.family), corruption=corruption)
    if corruption == "transliteration":
        if len(p.family) > 1 and (len(p.given) == 1 or rng.random() < 0.5):
            return replace(e, family=rng.choice(p.family[1:]), corruption=corruption)
        if len(p.given) > 1:
            return replace(e, given=rng.choice(p.given[1:]), corruption=corruption)
    if corruption == "swapped_order":
        return replace(e, given=e.family, family=e.given, corruption=corruption)
    if corruption == "day_month_swap" and p.dob.day <= 12 and p.dob.day != p.dob.month:
        swapped = p.dob.replace(day=p.dob.month, month=p.dob.day)
        return replace(e, dob=_date(swapped, file, rng), corruption=corruption)
    if corruption == "missing_day":
        return replace(e, dob=f"{p.dob.month:02d}/{p.dob.year}", corruption=corruption)
    if corruption == "passport_one_side" and p.passport:
        return replace(e, passport=file == US_TR, corruption=corruption)
    return e


def _alias(rng: random.Random, e: Entry) -> str:
    if rng.random() >= 0.15:
        return ""
    p = e.person
    return f"{rng.choice(p.family)}, {rng.choice(p.given)}"


def _row(rng: random.Random, file: str, rid: str, e: Entry) -> dict[str, str]:
    """The file's row for ``e``, in the agency's own column names (see the mapping files)."""
    p = e.person
    street, locality, region, postcode = p.home
    doc = {"num": p.passport if e.passport else "", "type": "P" if e.passport else ""}
    doc_country = p.nationality if e.passport else ""
    expiry = _date(p.passport_expiry, file, rng) if e.passport else ""
    if file == US_TR:
        return {
            "pax_id": rid,
            "surname": e.family,
            "given_names": " ".join(filter(None, (e.given, p.middle))),
            "dob": e.dob,
            "sex": p.sex,
            "nationality": p.nationality,
            "doc_type": doc["type"],
            "passport_number": doc["num"],
            "passport_issuer": doc_country,
            "passport_expiry": expiry,
            "us_address": f"{rng.randrange(1, 999)} Hotel Row" if p.country == "CAN" else street,
            "us_city": locality if p.country == "USA" else "New York",
            "us_state": region if p.country == "USA" else "NY",
            "us_zip": postcode if p.country == "USA" else "10001",
            "dest_country": "USA",
            "source": "APIS",
            **payload(rng, file),
        }
    src, grading, handling, conditions = source(rng, file)
    if file == US_WL:
        return {
            "uid": rid,
            "list_type": "WATCHLIST",
            "last_name": e.family,
            "first_name": e.given,
            "middle_name": p.middle,
            "aka": _alias(rng, e),
            "dob": e.dob,
            "gender": p.sex,
            "citizenship": p.nationality,
            "doc_type": doc["type"],
            "doc_num": doc["num"],
            "doc_country": doc_country,
            "doc_exp": expiry,
            "street": street,
            "city": locality,
            "state": region,
            "zip": postcode,
            "country": p.country,
            "src": src,
            "src_grade": grading,
            "handling": handling,
            "handling_caveat": conditions,
            **payload(rng, file),
        }
    row = {
        "Subject ID" if file == CA_WL else "Registry No": rid,
        "Surname" if file == CA_WL else "Family Name": e.family,
        "Given Names" if file == CA_WL else "Given Name": e.given,
    }
    if file == CA_WL:
        row |= {"Category": "watchlist", "Also Known As": _alias(rng, e)}
    else:
        row |= {"Middle Name": p.middle}
    row |= {
        "Date of Birth": e.dob,
        "Sex": {"F": "Female", "M": "Male"}[p.sex] if file == CA_SO else p.sex,
        "Citizenship": p.nationality,
        "Place of Birth": p.birth_place,
        "Document Type": doc["type"],
        "Passport No": doc["num"],
        "Passport Country": doc_country,
        "Passport Expiry": expiry,
        "Street Address": street,
        "City": locality,
        "Province": region,
        "Postal Code": postcode,
        "Country": p.country,
        "Source Ref": src,
        "Grading": grading,
        "Handling Code": handling,
        "Handling Conditions": conditions,
    }
    return row | payload(rng, file)


Breaker = Callable[[dict[str, str]], None]


def _set(column: str, value: str) -> Breaker:
    def apply(row: dict[str, str]) -> None:
        row[column] = value

    return apply


def _no_name(file: str) -> Breaker:
    def apply(row: dict[str, str]) -> None:
        for column in NAME_COLUMNS[file]:
            row[column] = ""

    return apply


def _conditions_missing(row: dict[str, str]) -> None:
    row["Handling Code"], row["Handling Conditions"] = "C", ""


DUPLICATE = "duplicate record_id"
# the deliberately bad rows of each file: (what is wrong, how to break a good row)
BAD_ROWS: dict[str, tuple[tuple[str, Breaker | None], ...]] = {
    CA_WL: (
        ("impossible date", _set("Date of Birth", "31/04/1985")),
        ("no name", _no_name(CA_WL)),
        ("unknown category", _set("Category", "terrorist")),
        (DUPLICATE, None),
    ),
    CA_SO: (
        ("impossible date", _set("Date of Birth", "29/02/1989")),
        ("no name", _no_name(CA_SO)),
        ("handling code C without conditions", _conditions_missing),
    ),
    US_WL: (
        ("unknown category", _set("list_type", "NO-FLY")),
        ("impossible date", _set("dob", "02/30/1975")),
        (DUPLICATE, None),
    ),
    US_TR: (
        ("year out of range", _set("dob", "01/15/1700")),
        ("no name", _no_name(US_TR)),
    ),
}


Pair = tuple[str, Entry, str, Entry]  # Canadian file and entry, US file and entry


def _population(rng: random.Random) -> tuple[dict[str, list[Entry]], list[Pair]]:
    """Every file's entries, and the (Canadian, US) entry pairs that are the same person."""
    files: dict[str, list[Entry]] = {f: [] for f in SIZES}
    pairs: list[Pair] = []

    def corruption(*excluded: str) -> str:
        kinds = [k for k in CORRUPTIONS if k not in excluded]
        return rng.choices(kinds, weights=[CORRUPTIONS[k] for k in kinds])[0]

    def traveller(p: Person) -> Person:
        return p if p.passport else replace(p, passport=names.passport_number(rng, p.nationality))

    for ca, us, count in OVERLAPS:
        for i in range(count):
            p = _new_person(rng, rng.choice(("CAN", "CAN", "USA")))
            triple = ca == CA_WL and us == US_WL and i < TRIPLES
            if us == US_TR or triple:
                p = traveller(p)
            ca_e, us_e = _entry(rng, p, ca), _entry(rng, p, us, corruption())
            if us_e.corruption == "passport_one_side":
                ca_e = replace(ca_e, passport=us != US_TR)
            files[ca].append(ca_e)
            files[us].append(us_e)
            pairs.append((ca, ca_e, us, us_e))
            if triple:
                tr_e = _entry(rng, p, US_TR, corruption("passport_one_side"))
                files[US_TR].append(tr_e)
                pairs.append((ca, ca_e, US_TR, tr_e))

    for file, households, country in ((CA_WL, 8, "CAN"), (US_TR, 15, "USA")):
        for h in range(households):
            head = _new_person(rng, country if h % 2 else "CAN")
            members = [head] + [
                _new_person(rng, "CAN", like=head) for _ in range(rng.randrange(1, 4))
            ]
            if h % 3 == 0:  # twins: same surname, address and date of birth
                members[1] = replace(members[1], dob=head.dob)
            for m in members:
                files[file].append(_entry(rng, traveller(m) if file == US_TR else m, file))

    for file, size in SIZES.items():
        while len(files[file]) < size:
            country = "CAN" if file.startswith("ca_") == (rng.random() < 0.85) else "USA"
            p = _new_person(rng, country)
            files[file].append(_entry(rng, traveller(p) if file == US_TR else p, file))
        rng.shuffle(files[file])
    return files, pairs


def _csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def build(seed: int = SEED) -> dict[str, bytes]:
    """Every bundled file's name and content. Deterministic: same seed, same bytes."""
    rng = random.Random(seed)
    files, pairs = _population(rng)
    ids: dict[int, str] = {}
    output: dict[str, bytes] = {}
    described: dict[str, object] = {}
    for file, entries in files.items():
        prefix = PREFIXES[file]
        rows: list[dict[str, str]] = []
        for n, e in enumerate(entries, start=1):
            ids[id(e)] = f"{prefix}-{n:05d}"
            rows.append(_row(rng, file, ids[id(e)], e))
        id_column = next(iter(rows[0]))
        bad: dict[int, str] = {}
        for k, (reason, breaker) in enumerate(BAD_ROWS[file], start=1):
            p = _new_person(rng, "CAN" if file.startswith("ca_") else "USA")
            row = _row(rng, file, f"{prefix}-{len(entries) + k:05d}", _entry(rng, p, file))
            at = rng.randrange(len(rows) // 2, len(rows))
            if breaker is None:
                good = [r for r in rows[:at] if id(r) not in bad]
                row[id_column] = rng.choice(good)[id_column]
            else:
                breaker(row)
            rows.insert(at, row)
            bad[id(row)] = reason
        encoding = "utf-8-sig" if file == CA_SO else "utf-8"  # an Excel export, with a BOM
        output[file] = _csv(rows).encode(encoding)
        mapping_name = file.replace(".csv", ".mapping.json")
        output[mapping_name] = (
            json.dumps(MAPPINGS[file], indent=2, ensure_ascii=False) + "\n"
        ).encode()
        rejects = [(i + 2, bad[id(r)]) for i, r in enumerate(rows) if id(r) in bad]
        described[file] = {
            "mapping": mapping_name,
            "rows": len(rows),
            "loaded": len(entries),
            "rejected": len(rejects),
            "reject_lines": [line for line, _ in rejects],
            "reject_reasons": [reason for _, reason in rejects],
        }
    truth = sorted((ca, ids[id(c)], us, ids[id(u)], u.corruption) for ca, c, us, u in pairs)
    header = [("ca_file", "ca_record_id", "us_file", "us_record_id", "corruption")]
    output["truth.csv"] = "".join(",".join(t) + "\n" for t in header + truth).encode()
    manifest = {
        "seed": seed,
        "files": described,
        "truth": {"file": "truth.csv", "pairs": len(truth)},
    }
    output["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    return output


def main(argv: list[str] | None = None) -> None:
    """Write every bundled file into ``--out`` (default: this directory)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name, content in build().items():
        (out / name).write_bytes(content)


if __name__ == "__main__":
    main()
