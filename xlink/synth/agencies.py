"""How each agency writes its file: columns, mappings, payload and source columns, bad rows.

Part of the SYNTHETIC data generator (:mod:`xlink.synth`). Four layouts, one per file of the
bundled sample (:mod:`xlink.synth.bundled`), each with the ``*.mapping.json`` that maps its own
column names onto xlink's fields:

- ``ca_watchlist.csv``: the Canadian watchlist. Dates ``DD/MM/YYYY`` (a few ISO), gradings in
  the 3x5x2 system (``2B``), a category column, aliases.
- ``ca_sex_offenders.csv``: the Canadian sex-offender registry, an Excel export (UTF-8 with a
  BOM). A middle-name column, sex written out (``Female``), the category in the mapping.
- ``us_watchlist.csv``: the US watchlist. Dates ``MM/DD/YYYY``, Admiralty gradings (``B2``).
- ``us_travellers.csv``: a US traveller manifest (APIS): every traveller's passport, the given
  names with the middle names, the address in the US (a hotel for a visitor), flight details.

``xlink synth`` writes its two files in the two watchlists' layouts. :data:`BAD_ROWS` are the
deliberately broken rows of the bundled sample, so the demo shows rejects.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable

from xlink.synth._slips import write_date
from xlink.synth.corrupt import Draft
from xlink.synth.places import random_home

__all__ = [
    "BAD_ROWS",
    "CA_SO",
    "CA_WL",
    "COLUMNS",
    "DUPLICATE",
    "ENCODINGS",
    "FILES",
    "MAPPINGS",
    "NAME_COLUMNS",
    "PREFIXES",
    "SIDES",
    "US_TR",
    "US_WL",
    "agency_row",
    "format_date",
    "mapping_name",
    "payload",
    "source",
]

CA_WL, CA_SO = "ca_watchlist.csv", "ca_sex_offenders.csv"
US_WL, US_TR = "us_watchlist.csv", "us_travellers.csv"
FILES = (CA_WL, CA_SO, US_WL, US_TR)
SIDES = {CA_WL: "ca", CA_SO: "ca", US_WL: "us", US_TR: "us"}
PREFIXES = {CA_WL: "CAWL", CA_SO: "CASO", US_WL: "USWL", US_TR: "USTR"}
#: The registry is an Excel export: UTF-8 with a byte-order mark. The others are plain UTF-8.
ENCODINGS = {CA_WL: "utf-8", CA_SO: "utf-8-sig", US_WL: "utf-8", US_TR: "utf-8"}

_CA_COMMON_COLUMNS = {
    "Date of Birth": "birth_date",
    "Sex": "sex",
    "Citizenship": "nationalities",
    "Place of Birth": "birth_place",
    "Document Type": "doc_type",
    "Passport No": "doc_number",
    "Passport Country": "doc_country",
    "Passport Expiry": "doc_expiry",
    "Street Address": "address",
    "City": "locality",
    "Province": "region",
    "Postal Code": "postcode",
    "Country": "country",
    "Source Ref": "source_id",
    "Grading": "grading",
    "Handling Code": "handling_code",
    "Handling Conditions": "handling_conditions",
}
#: Each file's mapping (written as its ``*.mapping.json``).
MAPPINGS: dict[str, dict[str, object]] = {
    CA_WL: {
        "date_order": "DMY",
        "columns": {
            "Subject ID": "record_id",
            "Surname": "family_name",
            "Given Names": "given_name",
            "Category": "category",
            "Also Known As": "aliases",
            **_CA_COMMON_COLUMNS,
        },
    },
    CA_SO: {
        "date_order": "DMY",
        "category": "sex_offender",
        "columns": {
            "Registry No": "record_id",
            "Family Name": "family_name",
            "Given Name": "given_name",
            "Middle Name": "middle_name",
            **_CA_COMMON_COLUMNS,
        },
    },
    US_WL: {
        "date_order": "MDY",
        "columns": {
            "uid": "record_id",
            "list_type": "category",
            "last_name": "family_name",
            "first_name": "given_name",
            "aka": "aliases",
            "dob": "birth_date",
            "gender": "sex",
            "citizenship": "nationalities",
            "doc_num": "doc_number",
            "doc_exp": "doc_expiry",
            "street": "address",
            "city": "locality",
            "state": "region",
            "zip": "postcode",
            "src": "source_id",
            "src_grade": "grading",
            "handling": "handling_code",
            "handling_caveat": "handling_conditions",
        },
    },
    US_TR: {
        "date_order": "MDY",
        "category": "traveller",
        "columns": {
            "pax_id": "record_id",
            "surname": "family_name",
            "given_names": "given_name",
            "dob": "birth_date",
            "nationality": "nationalities",
            "passport_number": "doc_number",
            "passport_issuer": "doc_country",
            "passport_expiry": "doc_expiry",
            "us_address": "address",
            "us_city": "locality",
            "us_state": "region",
            "us_zip": "postcode",
            "dest_country": "country",
            "source": "source_id",
        },
    },
}
_CA_TAIL = (
    "Date of Birth", "Sex", "Citizenship", "Place of Birth", "Document Type", "Passport No",
    "Passport Country", "Passport Expiry", "Street Address", "City", "Province", "Postal Code",
    "Country", "Source Ref", "Grading", "Handling Code", "Handling Conditions", "Offence",
    "Risk Level", "Remarks",
)  # fmt: skip
#: Each file's header, in order.
COLUMNS: dict[str, tuple[str, ...]] = {
    CA_WL: ("Subject ID", "Surname", "Given Names", "Category", "Also Known As", *_CA_TAIL),
    CA_SO: ("Registry No", "Family Name", "Given Name", "Middle Name", *_CA_TAIL),
    US_WL: (
        "uid", "list_type", "last_name", "first_name", "middle_name", "aka", "dob", "gender",
        "citizenship", "doc_type", "doc_num", "doc_country", "doc_exp", "street", "city",
        "state", "zip", "country", "src", "src_grade", "handling", "handling_caveat", "offense",
        "threat_level", "notes",
    ),
    US_TR: (
        "pax_id", "surname", "given_names", "dob", "sex", "nationality", "doc_type",
        "passport_number", "passport_issuer", "passport_expiry", "us_address", "us_city",
        "us_state", "us_zip", "dest_country", "source", "flight", "arrival_date", "port_of_entry",
    ),
}  # fmt: skip
#: The columns that hold a name (all emptied by the "no name" bad row).
NAME_COLUMNS = {
    CA_WL: ("Surname", "Given Names"),
    CA_SO: ("Family Name", "Given Name", "Middle Name"),
    US_WL: ("last_name", "first_name", "middle_name"),
    US_TR: ("surname", "given_names"),
}

_CA_OFFENCES = (
    "Drug trafficking",
    "Firearms smuggling",
    "Money laundering",
    "Human smuggling",
    "Terrorist financing",
    "Organised crime",
)
_SO_OFFENCES = (
    "Sexual interference",
    "Child luring",
    "Possession of child sexual abuse material",
    "Sexual assault",
)
_US_OFFENSES = (
    "Narcotics trafficking",
    "Weapons trafficking",
    "Wire fraud",
    "Material support",
    "Alien smuggling",
)
_REMARKS = (
    "",
    "",
    "Frequent cross-border travel",
    "Uses multiple identities",
    "Known to travel with associates",
    "Subject of ongoing investigation",
    "Do not approach alone",
)
_CONDITIONS = (
    "Not for onward disclosure without originator consent",
    "Law-enforcement use only; no judicial use without consent",
    "Contact originator before any action",
)


def mapping_name(file: str) -> str:
    """``ca_watchlist.csv`` → ``ca_watchlist.mapping.json``."""
    return file.removesuffix(".csv") + ".mapping.json"


def payload(rng: random.Random, file: str) -> dict[str, str]:
    """The file's own columns that xlink does not map (carried as the record's payload)."""
    if file == CA_WL:
        return {
            "Offence": rng.choice(_CA_OFFENCES),
            "Risk Level": rng.choice(("Low", "Medium", "High")),
            "Remarks": rng.choice(_REMARKS),
        }
    if file == CA_SO:
        return {
            "Offence": rng.choice(_SO_OFFENCES),
            "Risk Level": rng.choice(("High", "Very High")),
            "Remarks": rng.choice(_REMARKS),
        }
    if file == US_WL:
        return {
            "offense": rng.choice(_US_OFFENSES),
            "threat_level": rng.choice(("LOW", "ELEVATED", "HIGH")),
            "notes": rng.choice(_REMARKS),
        }
    arrival = datetime.date(2025, 3, 1) + datetime.timedelta(days=rng.randrange(60))
    return {
        "flight": rng.choice(("AC", "WS", "UA", "DL", "AA")) + str(rng.randrange(100, 9000)),
        "arrival_date": f"{arrival.month:02d}/{arrival.day:02d}/{arrival.year}",
        "port_of_entry": rng.choice(("Blaine WA", "Detroit MI", "Buffalo NY", "JFK", "ORD")),
    }


def source(rng: random.Random, file: str) -> tuple[str, str, str, str]:
    """Source id, grading, handling code and conditions of a watchlist or registry record."""
    ca = file.startswith("ca_")
    ref = f"{'RCMP' if ca else 'FBI'}-SRC-{rng.randrange(1000, 9999)}"
    grading = (
        f"{rng.choice('1122233')}{rng.choice('AABBCDE')}"
        if ca
        else f"{rng.choice('ABBCCDEF')}{rng.choice('1223346')}"
    )
    if rng.random() < 0.3:
        return ref, grading, "C", rng.choice(_CONDITIONS)
    return ref, grading, "P", ""


def format_date(parts: tuple[int, int | None, int | None] | None, side: str, iso: bool) -> str:
    """A date as ``side``'s agencies write it: Canada ``DD/MM/YYYY``, the US ``MM/DD/YYYY``,
    ``iso`` ``YYYY-MM-DD``; a partial date as ``MM/YYYY`` or ``YYYY``; none as ``""``."""
    if iso and parts is not None and parts[1] is not None and parts[2] is not None:
        y, m, d = parts
        return f"{y:04d}-{m:02d}-{d:02d}"
    return write_date(parts, "DMY" if side == "ca" else "MDY")


def agency_row(rng: random.Random, file: str, draft: Draft, record_id: str) -> list[str]:
    """The CSV row of ``draft`` in ``file``'s columns (:data:`COLUMNS`), with invented source
    metadata and payload."""
    side = SIDES[file]
    iso = side == "ca" and rng.random() < 0.03  # some Canadian systems export ISO dates
    dob = format_date(draft.dob, side, iso)
    exp = draft.passport_expiry
    expiry = format_date((exp.year, exp.month, exp.day), side, False) if exp else ""
    line, locality, region, postcode, country = draft.address or ("", "", "", "", "")
    doc_type = "P" if draft.passport else ""
    doc = [doc_type, draft.passport, draft.passport_country, expiry]
    if file == US_TR:
        if draft.address is not None and country != "USA":  # a visitor: where they stay
            stay = random_home(rng, "USA")
            line, locality, region, postcode = (
                stay.line(),
                stay.locality,
                stay.region,
                stay.postcode,
            )
        return [
            record_id, draft.family, draft.given, dob, draft.sex, draft.nationality, *doc,
            line, locality, region, postcode, "USA", "APIS", *payload(rng, file).values(),
        ]  # fmt: skip
    src, grading, handling, conditions = source(rng, file)
    extra = list(payload(rng, file).values())
    tail = [line, locality, region, postcode, country, src, grading, handling, conditions, *extra]
    if file == US_WL:
        return [
            record_id, "WATCHLIST", draft.family, draft.given, draft.middle, draft.alias, dob,
            draft.sex, draft.nationality, *doc, *tail,
        ]  # fmt: skip
    if file == CA_WL:
        head = [record_id, draft.family, draft.given, "watchlist", draft.alias]
        sex = draft.sex
    else:
        head = [record_id, draft.family, draft.given, draft.middle]
        sex = {"F": "Female", "M": "Male"}.get(draft.sex, "")
    return [*head, dob, sex, draft.nationality, draft.birth_place, *doc, *tail]


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
#: The deliberately bad rows of each bundled file: (what is wrong, how a good row is broken).
#: :data:`DUPLICATE` has no breaker: the row takes the id of an earlier row.
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
